import { Module } from '@nestjs/common';

import { ProvidersModule } from '../providers/providers.module';
import { SlotsModule } from '../slots/slots.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { ReclaimRepository } from './reclaim.repository';
import { ReclaimService } from './reclaim.service';
import { ReclaimWorker } from './reclaim.worker';
import { ReconcileService } from './reconcile.service';

@Module({
  imports: [SlotsModule, VoiceDataModule, ProvidersModule],
  providers: [ReclaimRepository, ReclaimService, ReclaimWorker, ReconcileService],
  exports: [ReclaimService, ReconcileService],
})
export class ReclaimModule {}
