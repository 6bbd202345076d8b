import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { SlotsModule } from '../slots/slots.module';
import { IdempotencyRepository } from './idempotency.repository';
import { LastUseRecorder } from './last-use.recorder';
import { LongPollGate } from './long-poll.gate';
import { MetadataService } from './metadata.service';
import { MetadataWorker } from './metadata.worker';
import { ReadyVoiceCache } from './ready-voice.cache';
import { UploadService } from './upload.service';
import { VoiceDataModule } from './voice-data.module';
import { VoiceService } from './voice.service';

@Module({
  imports: [VoiceDataModule, SlotsModule, ProvidersModule],
  providers: [
    VoiceService,
    UploadService,
    MetadataService,
    MetadataWorker,
    LastUseRecorder,
    ReadyVoiceCache,
    IdempotencyRepository,
    LongPollGate,
  ],
  exports: [VoiceService, VoiceDataModule, IdempotencyRepository, LongPollGate],
})
export class VoiceModule {}
