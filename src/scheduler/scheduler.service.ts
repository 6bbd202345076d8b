import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { ProviderRegistry } from '../providers/provider-registry';
import { ReclaimService } from '../reclaim/reclaim.service';
import { CapacityService, SWEEP_CLEANUPS_TICKS } from '../slots/capacity.service';
import { DispatcherService } from '../slots/dispatcher.service';
import { SweeperService } from '../slots/sweeper.service';
import { IdempotencyRepository } from '../voice/idempotency.repository';
import { SampleSweeperService } from '../voice/sample-sweeper.service';
import { MetadataJobs } from '../voice/metadata-jobs';
import { VoiceSweepsRepository } from '../voice/voice-sweeps.repository';
import { SchedulerTickRepository } from './scheduler-tick.repository';

interface Task {
  name: string;
  periodSeconds: number;
  run: () => Promise<unknown>;
}

/**
 * Timed work of the scheduler role. Each task claims its tick in Postgres first, so any number of
 * scheduler replicas run it once per period. The timers are safety nets: dispatch and clean-up are
 * event-driven; these catch what a crash or a Redis outage let fall.
 */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap {
  private readonly logger = new Logger(SchedulerService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly ticks: SchedulerTickRepository,
    private readonly sweeper: SweeperService,
    private readonly dispatcher: DispatcherService,
    private readonly capacity: CapacityService,
    private readonly providers: ProviderRegistry,
    private readonly voices: VoiceSweepsRepository,
    private readonly metadataJobs: MetadataJobs,
    private readonly reclaim: ReclaimService,
    private readonly idempotency: IdempotencyRepository,
    private readonly samples: SampleSweeperService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Every role that can dispatch needs the configured limits in place.
    await this.capacity.applyConfiguredLimits();
    if (!hasRole(this.config, 'scheduler')) return;
    const tick = this.config.SCHEDULER_TICK_SECONDS;
    const tasks: Task[] = [
      {
        name: 'dispatch',
        periodSeconds: tick,
        run: () => Promise.all(this.providers.enabled().map((p) => this.dispatcher.dispatch(p))),
      },
      {
        name: 'sweep-allocations',
        periodSeconds: tick,
        run: () => this.sweeper.sweepExpiredAllocations(),
      },
      {
        name: 'sweep-cleanups',
        periodSeconds: tick * SWEEP_CLEANUPS_TICKS,
        run: () => this.sweeper.sweepCleanups(),
      },
      {
        name: 'sweep-pending',
        periodSeconds: tick * 3,
        run: async () => {
          // A metadata job normally runs within seconds; six ticks without progress means it was lost.
          for (const id of await this.voices.stalePending(tick * 6, 100))
            await this.metadataJobs.enqueue(id);
        },
      },
      {
        name: 'reclaim',
        periodSeconds: tick,
        run: async () => {
          for (const p of this.providers.enabled()) {
            await this.reclaim.reclaimForBacklog(p);
            await this.reclaim.reclaimIdle(p);
          }
          await this.reclaim.sweepStale();
        },
      },
      {
        name: 'reconcile',
        periodSeconds: this.config.RECONCILE_INTERVAL_SECONDS,
        run: () =>
          Promise.all(this.providers.enabled().map((p) => this.capacity.requestReconcile(p))),
      },
      {
        // Debris of crashed uploads is at least SAMPLE_ORPHAN_AGE_SECONDS old: a minute is soon enough.
        name: 'sweep-orphan-samples',
        periodSeconds: tick * 6,
        run: () => this.samples.sweepOrphans(),
      },
      {
        name: 'purge-idempotency-keys',
        periodSeconds: 3600,
        run: () => this.idempotency.purgeExpired(),
      },
      {
        name: 'refresh-accounts',
        periodSeconds: this.config.ACCOUNT_REFRESH_SECONDS,
        run: () =>
          Promise.all(this.providers.enabled().map((p) => this.capacity.refreshAccount(p))),
      },
    ];
    for (const task of tasks) {
      const timer = setInterval(() => void this.runTask(task), task.periodSeconds * 1000);
      this.registry.addInterval(task.name, timer);
    }
    // Read the accounts' limits and foreign voices now rather than after the first period.
    for (const name of ['refresh-accounts', 'reconcile']) {
      const task = tasks.find((t) => t.name === name);
      if (task) void this.runTask(task);
    }
    this.logger.log({ tasks: tasks.map((t) => t.name), tickSeconds: tick }, 'scheduler started');
  }

  private async runTask(task: Task): Promise<void> {
    try {
      if (!(await this.ticks.claimTick(task.name, task.periodSeconds))) return;
      await task.run();
    } catch (err) {
      this.logger.warn(
        { err, task: task.name },
        'scheduled task failed; it runs again next period',
      );
    }
  }
}
