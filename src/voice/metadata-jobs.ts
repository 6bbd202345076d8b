import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { addJobReplacingFinished } from '../queue/add-job';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { currentTraceCarrier } from '../observability/trace-context';

/** Enqueues a pending voice's metadata extraction (after an upload, and by the pending sweep). */
@Injectable()
export class MetadataJobs {
  private readonly logger = new Logger(MetadataJobs.name);

  constructor(@InjectQueue(QueueName.Metadata) private readonly metadataQueue: Queue) {}

  /** A lost enqueue is not fatal: the scheduler re-enqueues pending voices it finds. */
  async enqueue(voiceId: string): Promise<void> {
    const data: JobPayloads[JobName.ExtractMetadata] = { voiceId, trace: currentTraceCarrier() };
    // A failed job of the same id is replaced: the sweep's re-enqueue must not be dropped.
    await addJobReplacingFinished(this.metadataQueue, JobName.ExtractMetadata, data, {
      jobId: `metadata:${voiceId}`,
      attempts: 5,
      backoff: { type: 'exponential', delay: 1_000 },
    }).catch((err: unknown) =>
      this.logger.warn({ err, voiceId }, 'metadata enqueue failed; the sweeper will retry'),
    );
  }
}
