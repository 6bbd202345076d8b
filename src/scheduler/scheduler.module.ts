import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { ProvidersModule } from '../providers/providers.module';
import { ReclaimModule } from '../reclaim/reclaim.module';
import { SlotsModule } from '../slots/slots.module';
import { VoiceModule } from '../voice/voice.module';
import { RecoveryService } from './recovery.service';
import { SchedulerTickRepository } from './scheduler-tick.repository';
import { SchedulerService } from './scheduler.service';

@Module({
  imports: [ScheduleModule.forRoot(), SlotsModule, VoiceModule, ProvidersModule, ReclaimModule],
  providers: [SchedulerService, RecoveryService, SchedulerTickRepository],
})
export class SchedulerModule {}
