import { Injectable } from '@nestjs/common';
import { OnJob } from '../queue/job-runner';
import { JobName, type JobPayloads } from '../queue/queues';
import { MetadataService } from './metadata.service';

/** The metadata extraction handler (started by the job runner on worker replicas). */
@Injectable()
export class MetadataWorker {
  constructor(private readonly metadata: MetadataService) {}

  @OnJob({ name: JobName.ExtractMetadata, concurrency: 4 })
  async extract(data: JobPayloads[JobName.ExtractMetadata]): Promise<void> {
    await this.metadata.extract(data.voiceId);
  }
}
