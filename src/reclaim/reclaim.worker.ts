import { Injectable } from '@nestjs/common';
import { OnJob } from '../queue/job-runner';
import { JobName, type JobPayloads } from '../queue/queues';
import { addLogContext } from '../observability/log-context';
import { ReclaimService } from './reclaim.service';
import { ReconcileService } from './reconcile.service';

/** The reclaim and reconciliation handlers (started by the job runner on worker replicas). */
@Injectable()
export class ReclaimWorker {
  constructor(
    private readonly reclaim: ReclaimService,
    private readonly reconcile: ReconcileService,
  ) {}

  // One reconciliation at a time: it lists the whole remote account.
  @OnJob({ name: JobName.Reconcile, concurrency: 1 })
  reconcileAccount(data: JobPayloads[JobName.Reconcile]): Promise<unknown> {
    addLogContext({ provider: data.provider });
    return this.reconcile.reconcile(data.provider);
  }

  @OnJob({ name: JobName.Reclaim, concurrency: 4 })
  async complete(data: JobPayloads[JobName.Reclaim]): Promise<{ reclaimed: unknown }> {
    return { reclaimed: await this.reclaim.complete(data.voiceId, data.fencingToken) };
  }
}
