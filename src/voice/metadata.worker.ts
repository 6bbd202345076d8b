import { InjectQueue } from '@nestjs/bull';
import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Job, Queue } from 'bull';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { runJob } from '../observability/job-context';
import { MetadataService } from './metadata.service';

/** The worker role's metadata processor; thin by design, the service is idempotent. */
@Injectable()
export class MetadataWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(MetadataWorker.name);
  private started = false;

  constructor(
    private readonly config: AppConfig,
    private readonly metadata: MetadataService,
    @InjectQueue(QueueName.Metadata) private readonly queue: Queue,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'worker')) return;
    void this.queue.process(
      JobName.ExtractMetadata,
      4,
      async (job: Job<JobPayloads[JobName.ExtractMetadata]>) => {
        await runJob(job, () => this.metadata.extract(job.data.voiceId));
      },
    );
    this.started = true;
    this.logger.log('metadata worker started');
  }

  /** Stop taking jobs and wait for the running ones; the queue stays open for adds (uploads). */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.started) await this.queue.pause(true);
  }
}
