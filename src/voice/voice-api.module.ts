import { Module } from '@nestjs/common';
import { VoiceModule } from './voice.module';
import { VoicesController } from './voices.controller';

/** The /v1/voices routes; mounted only on replicas with the api role. */
@Module({ imports: [VoiceModule], controllers: [VoicesController] })
export class VoiceApiModule {}
