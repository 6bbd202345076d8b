import { Module } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { InstrumentedSampleStorage } from './instrumented-sample-storage';
import { LocalSampleStorage } from './local-sample-storage';
import { S3SampleStorage } from './s3-sample-storage';
import { SampleStorage } from './sample-storage.port';
import { SampleSweeperService } from './sample-sweeper.service';
import { VoiceEventsListener } from './voice-events.listener';
import { VoiceTransitionHooks } from './voice-transition.hooks';
import { QueuePositionRepository } from './queue-position.repository';
import { VoiceCleanupRepository } from './voice-cleanup.repository';
import { VoiceSweepsRepository } from './voice-sweeps.repository';
import { VoiceAdmissionRepository } from './voice-admission.repository';
import { VoiceUsageRepository } from './voice-usage.repository';
import { VoiceRepository } from './voice.repository';

/**
 * Voice persistence, its notifications and sample storage (with its orphan sweep): shared by the voice use cases and the
 * slot machinery (which re-derives its timers when the notification connection comes back).
 */
@Module({
  providers: [
    VoiceTransitionHooks,
    VoiceRepository,
    VoiceAdmissionRepository,
    VoiceUsageRepository,
    VoiceCleanupRepository,
    VoiceSweepsRepository,
    QueuePositionRepository,
    VoiceEventsListener,
    SampleSweeperService,
    {
      provide: SampleStorage,
      inject: [AppConfig],
      // Wrapped for a span per operation and a failure count (src/observability).
      useFactory: (config: AppConfig): SampleStorage =>
        new InstrumentedSampleStorage(
          config.STORAGE_DRIVER === 's3'
            ? new S3SampleStorage({
                bucket: config.S3_BUCKET ?? '',
                region: config.S3_REGION,
                endpoint: config.S3_ENDPOINT,
                forcePathStyle: config.S3_FORCE_PATH_STYLE,
              })
            : new LocalSampleStorage(config.STORAGE_DIR),
          config.STORAGE_DRIVER,
        ),
    },
  ],
  exports: [
    VoiceTransitionHooks,
    VoiceRepository,
    VoiceAdmissionRepository,
    VoiceUsageRepository,
    VoiceCleanupRepository,
    VoiceSweepsRepository,
    QueuePositionRepository,
    VoiceEventsListener,
    SampleStorage,
    SampleSweeperService,
  ],
})
export class VoiceDataModule {}
