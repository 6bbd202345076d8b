import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { AllocationService } from './allocation.service';
import { CapacityService } from './capacity.service';
import { CloneBudgetService } from './clone-budget.service';
import { DispatcherService } from './dispatcher.service';
import { LegacySchedulerService } from './legacy-scheduler';
import { SlotsRepository } from './slots.repository';
import { SlotsWorker } from './slots.worker';
import { SweeperService } from './sweeper.service';
import { VoiceTransitionsSubscriber } from './voice-transitions.subscriber';

@Module({
  imports: [ProvidersModule, VoiceDataModule],
  providers: [
    SlotsRepository,
    DispatcherService,
    LegacySchedulerService,
    AllocationService,
    CapacityService,
    CloneBudgetService,
    SweeperService,
    SlotsWorker,
    VoiceTransitionsSubscriber,
  ],
  exports: [
    SlotsRepository,
    DispatcherService,
    CapacityService,
    CloneBudgetService,
    SweeperService,
  ],
})
export class SlotsModule {}
