import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { SlotsModule } from '../slots/slots.module';
import { VoiceModule } from '../voice/voice.module';
import { WebhooksController } from '../webhooks/webhooks.controller';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { AdminController } from './admin.controller';

/** Operator routes; mounted on api replicas. */
@Module({
  imports: [SlotsModule, VoiceModule, ProvidersModule, WebhooksModule],
  controllers: [AdminController, WebhooksController],
})
export class AdminModule {}
