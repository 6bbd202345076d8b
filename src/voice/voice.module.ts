import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { IdempotencyRepository } from './idempotency.repository';
import { LastUseRecorder } from './last-use.recorder';
import { LongPollGate } from './long-poll.gate';
import { MetadataService } from './metadata.service';
import { MetadataWorker } from './metadata.worker';
import { ReadyVoiceCache } from './ready-voice.cache';
import { UploadService } from './upload.service';
import { VoiceDataModule } from './voice-data.module';
import { MetadataJobs } from './metadata-jobs';
import { VoiceActivationService } from './voice-activation.service';
import { VoiceLifecycleService } from './voice-lifecycle.service';
import { VoiceQueriesService } from './voice-queries.service';
import { VoiceUploadService } from './voice-upload.service';

@Module({
  imports: [VoiceDataModule, ProvidersModule],
  providers: [
    VoiceUploadService,
    VoiceActivationService,
    VoiceQueriesService,
    VoiceLifecycleService,
    MetadataJobs,
    UploadService,
    MetadataService,
    MetadataWorker,
    LastUseRecorder,
    ReadyVoiceCache,
    IdempotencyRepository,
    LongPollGate,
  ],
  exports: [
    VoiceUploadService,
    VoiceQueriesService,
    VoiceActivationService,
    VoiceLifecycleService,
    MetadataJobs,
    VoiceDataModule,
    IdempotencyRepository,
    LongPollGate,
  ],
})
export class VoiceModule {}
