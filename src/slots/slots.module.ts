import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { AllocationService } from './allocation.service';
import { CapacityService } from './capacity.service';
import { DispatcherService } from './dispatcher.service';
import { LegacySchedulerService } from './legacy-scheduler';
import { SlotsRepository } from './slots.repository';
import { SlotsWorker } from './slots.worker';
import { SweeperService } from './sweeper.service';

@Module({
  imports: [ProvidersModule, VoiceDataModule],
  providers: [
    SlotsRepository,
    DispatcherService,
    LegacySchedulerService,
    AllocationService,
    CapacityService,
    SweeperService,
    SlotsWorker,
  ],
  exports: [SlotsRepository, DispatcherService, CapacityService, SweeperService],
})
export class SlotsModule {}
