import { Module } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { InstrumentedSampleStorage } from '../observability/instrumented-sample-storage';
import { LocalSampleStorage } from './local-sample-storage';
import { S3SampleStorage } from './s3-sample-storage';
import { SampleStorage } from './sample-storage.port';
import { VoiceRepository } from './voice.repository';

/** Voice persistence and sample storage: shared by the voice use cases and the slot machinery. */
@Module({
  providers: [
    VoiceRepository,
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
  exports: [VoiceRepository, SampleStorage],
})
export class VoiceDataModule {}
