import { getQueueToken } from '@nestjs/bull';
import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Job, Queue } from 'bull';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { runJob } from '../observability/job-context';
import { ALLOCATION_QUEUE, JobName, QueueName, type JobPayloads } from '../queue/queues';
import { AllocationService } from './allocation.service';
import { CapacityService } from './capacity.service';

/**
 * The worker role's allocation and maintenance processors. Registered only when this replica has
 * the worker role, and for allocation only for WORKER_PROVIDERS. Processors stay thin: parse, call
 * a service; the services are idempotent, so Bull's at-least-once delivery is safe.
 */
@Injectable()
export class SlotsWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(SlotsWorker.name);
  private readonly served: Queue[] = [];

  constructor(
    private readonly config: AppConfig,
    private readonly moduleRef: ModuleRef,
    private readonly allocation: AllocationService,
    private readonly capacity: CapacityService,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'worker')) return;
    for (const provider of this.config.workerProviders) {
      const queue = this.queue(ALLOCATION_QUEUE[provider]);
      void queue.process(
        JobName.Allocate,
        this.config.WORKER_ALLOCATION_CONCURRENCY,
        async (job: Job<JobPayloads[JobName.Allocate]>) => {
          const outcome = await runJob(
            job,
            () => this.allocation.allocate(job.data.voiceId, job.data.fencingToken),
            { provider },
          );
          return { outcome };
        },
      );
      this.served.push(queue);
    }
    const maintenance = this.queue(QueueName.Maintenance);
    void maintenance.process(
      JobName.RemoteCleanup,
      4,
      async (job: Job<JobPayloads[JobName.RemoteCleanup]>) => {
        await runJob(job, () => this.capacity.cleanup(job.data.voiceId));
      },
    );
    this.served.push(maintenance);
    this.logger.log({ providers: this.config.workerProviders }, 'allocation workers started');
  }

  /**
   * Stop taking jobs and wait for the running ones. A local pause, not close(): these Queue
   * instances also add jobs (a finished allocation dispatches the next voices), so their Redis
   * connection must outlive the drain; @nestjs/bull closes them at application shutdown.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.served.length) return;
    await Promise.all(this.served.map((q) => q.pause(true)));
    this.logger.log({ queues: this.served.map((q) => q.name) }, 'allocation workers drained');
  }

  private queue(name: QueueName): Queue {
    return this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
  }
}
