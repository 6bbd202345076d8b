import { Module } from '@nestjs/common';
import { ProvidersModule } from '../providers/providers.module';
import { VoiceDataModule } from '../voice/voice-data.module';
import { AllocationFailureService } from './allocation-failure.service';
import { AllocationLeaseRepository } from './allocation-lease.repository';
import { AllocationService } from './allocation.service';
import { ClaimRepository } from './claim.repository';
import { CapacityService } from './capacity.service';
import { CloneBudgetService } from './clone-budget.service';
import { DispatchStrategy } from './dispatch-strategy';
import { DispatcherService } from './dispatcher.service';
import { FairDispatchStrategy } from './fair-dispatch.strategy';
import { LegacyClaimRepository } from './legacy-claim.repository';
import { LegacyDispatchStrategy } from './legacy-dispatch.strategy';
import { AppConfig } from '../config/config.module';
import { SlotsRepository } from './slots.repository';
import { SlotsWorker } from './slots.worker';
import { SweeperService } from './sweeper.service';
import { VoiceTransitionsSubscriber } from './voice-transitions.subscriber';

@Module({
  imports: [ProvidersModule, VoiceDataModule],
  providers: [
    SlotsRepository,
    ClaimRepository,
    AllocationLeaseRepository,
    LegacyClaimRepository,
    FairDispatchStrategy,
    LegacyDispatchStrategy,
    {
      provide: DispatchStrategy,
      inject: [AppConfig, FairDispatchStrategy, LegacyDispatchStrategy],
      useFactory: (
        config: AppConfig,
        fair: FairDispatchStrategy,
        legacy: LegacyDispatchStrategy,
      ) => (config.SCHEDULER_STRATEGY === 'legacy' ? legacy : fair),
    },
    DispatcherService,
    AllocationService,
    AllocationFailureService,
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
