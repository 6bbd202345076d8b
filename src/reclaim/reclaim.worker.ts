import { InjectQueue } from '@nestjs/bull';
import {
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Job, Queue } from 'bull';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { runJob } from '../observability/job-context';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { ReclaimService } from './reclaim.service';
import { ReconcileService } from './reconcile.service';

/** The worker role's reclaim processor (on the maintenance queue). */
@Injectable()
export class ReclaimWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    private readonly config: AppConfig,
    private readonly reclaim: ReclaimService,
    private readonly reconcile: ReconcileService,
    @InjectQueue(QueueName.Maintenance) private readonly queue: Queue,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'worker')) return;
    void this.queue.process(
      JobName.Reconcile,
      1,
      async (job: Job<JobPayloads[JobName.Reconcile]>) =>
        runJob(job, () => this.reconcile.reconcile(job.data.provider), {
          provider: job.data.provider,
        }),
    );
    void this.queue.process(JobName.Reclaim, 4, async (job: Job<JobPayloads[JobName.Reclaim]>) => ({
      reclaimed: await runJob(job, () =>
        this.reclaim.complete(job.data.voiceId, job.data.fencingToken),
      ),
    }));
  }

  /** Stop taking reclaim and reconcile jobs and wait for the running ones. */
  async beforeApplicationShutdown(): Promise<void> {
    if (hasRole(this.config, 'worker')) await this.queue.pause(true);
  }
}
