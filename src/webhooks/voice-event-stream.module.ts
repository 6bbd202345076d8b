import { Module } from '@nestjs/common';
import { VoiceModule } from '../voice/voice.module';
import { VoiceEventStreamController } from './voice-event-stream.controller';
import { VoiceEventStreamRepository } from './voice-event-stream.repository';
import { VoiceEventStreamService } from './voice-event-stream.service';

/**
 * GET /v1/voices/events (api role). Mounted before the /v1/voices routes, whose `:id` would
 * otherwise take "events" for a voice id on routers that match in order (Express).
 */
@Module({
  imports: [VoiceModule],
  providers: [VoiceEventStreamRepository, VoiceEventStreamService],
  controllers: [VoiceEventStreamController],
  exports: [VoiceEventStreamService],
})
export class VoiceEventStreamModule {}
