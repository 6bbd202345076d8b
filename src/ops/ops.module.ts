import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ProvidersModule } from '../providers/providers.module';
import { ReclaimModule } from '../reclaim/reclaim.module';
import { SlotsModule } from '../slots/slots.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { HealthController } from './health.controller';
import { MetricsController } from './metrics.controller';
import { MetricsRepository } from './metrics.repository';
import { MetricsService } from './metrics.service';

@Module({
  imports: [
    TerminusModule.forRoot({ logger: false }),
    SlotsModule,
    ProvidersModule,
    VoiceDataModule,
    WebhooksModule,
    ReclaimModule,
  ],
  controllers: [HealthController, MetricsController],
  providers: [MetricsService, MetricsRepository],
  exports: [MetricsService],
})
/** HTTP request metrics are counted by httpMetrics, which bootstrap.ts mounts first of all. */
export class OpsModule {}
