import { Injectable } from '@nestjs/common';
import { JobName, type JobPayloads } from '../queue/queues';
import { OnJob } from '../queue/job-runner';
import { AllocationService, type AllocationOutcome } from './allocation.service';
import { CapacityService } from './capacity.service';

/**
 * The allocation and remote-cleanup handlers (the job runner starts them on worker replicas, for
 * allocation only for WORKER_PROVIDERS). Handlers stay thin: parse, call a service; the services
 * are idempotent, so Bull's at-least-once delivery is safe.
 */
@Injectable()
export class SlotsWorker {
  constructor(
    private readonly allocation: AllocationService,
    private readonly capacity: CapacityService,
  ) {}

  @OnJob({ name: JobName.Allocate, concurrency: (c) => c.WORKER_ALLOCATION_CONCURRENCY })
  async allocate(data: JobPayloads[JobName.Allocate]): Promise<{ outcome: AllocationOutcome }> {
    return { outcome: await this.allocation.allocate(data.voiceId, data.fencingToken) };
  }

  @OnJob({ name: JobName.RemoteCleanup, concurrency: 4 })
  async cleanup(data: JobPayloads[JobName.RemoteCleanup]): Promise<void> {
    await this.capacity.cleanup(data.voiceId);
  }
}
