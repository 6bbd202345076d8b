import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { SlotsModule } from '../slots/slots.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhooksRepository } from './webhooks.repository';

/** Webhook deliveries (worker role) and the endpoints' storage; the admin routes mount on api. */
@Module({
  imports: [VoiceDataModule, SlotsModule, ProvidersModule],
  providers: [WebhooksRepository, WebhookDeliveryService],
  exports: [WebhooksRepository, WebhookDeliveryService],
})
export class WebhooksModule {}
