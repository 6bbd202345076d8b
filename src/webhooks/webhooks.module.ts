import { Module } from '@nestjs/common';
import { VoiceDataModule } from '../voice/voice-data.module';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhooksRepository } from './webhooks.repository';

/** Webhook deliveries (worker role) and the endpoints' storage; the admin routes mount on api. */
@Module({
  imports: [VoiceDataModule],
  providers: [WebhooksRepository, WebhookDeliveryService],
  exports: [WebhooksRepository, WebhookDeliveryService],
})
export class WebhooksModule {}
