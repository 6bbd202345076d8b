import { getQueueToken } from '@nestjs/bull';
import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner, ModuleRef } from '@nestjs/core';
import type { Job, Queue } from 'bull';
import type { AppConfig as AppConfigValues } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { runJob } from '../observability/job-context';
import { ALLOCATION_QUEUE, JobName, QueueName, type JobPayloads } from './queues';

export interface JobHandlerOptions {
  /** Jobs of this name handled at once by one replica (a number, or read from the config). */
  concurrency: number | ((config: AppConfigValues) => number);
}

/**
 * Marks the method that handles every job of one name. Exactly one handler per job name must exist
 * in the application: the boot refuses to start otherwise (a job name nobody handles would sit in
 * Redis for ever; two handlers would race for its jobs with different code).
 */
export const OnJob = DiscoveryService.createDecorator<JobHandlerOptions & { name: JobName }>();

/** Which queues carry a job name; allocation is per provider, limited to WORKER_PROVIDERS. */
function queuesOf(name: JobName, config: AppConfigValues): QueueName[] {
  switch (name) {
    case JobName.ExtractMetadata:
      return [QueueName.Metadata];
    case JobName.Allocate:
      return config.workerProviders.map((provider) => ALLOCATION_QUEUE[provider]);
    case JobName.RemoteCleanup:
    case JobName.Reclaim:
    case JobName.Reconcile:
      return [QueueName.Maintenance];
  }
}

const PROVIDER_OF_QUEUE = new Map(
  Object.entries(ALLOCATION_QUEUE).map(([provider, queue]) => [queue, provider]),
);

interface Handler {
  name: JobName;
  owner: string;
  options: JobHandlerOptions;
  run: (data: never) => Promise<unknown>;
}

/**
 * The one place that turns job names into Bull processors: it finds the @OnJob methods, checks
 * that every job name has exactly one, starts them on worker replicas only, runs each job inside
 * its log and trace context, and on shutdown stops taking jobs and waits for the running ones.
 */
@Injectable()
export class JobRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(JobRunner.name);
  private readonly served = new Set<Queue>();

  constructor(
    private readonly config: AppConfig,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly moduleRef: ModuleRef,
  ) {}

  onApplicationBootstrap(): void {
    const handlers = this.handlers();
    if (!hasRole(this.config, 'worker')) return;
    for (const handler of handlers.values()) {
      const { concurrency } = handler.options;
      const parallel = typeof concurrency === 'number' ? concurrency : concurrency(this.config);
      for (const name of queuesOf(handler.name, this.config)) {
        const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
        const provider = PROVIDER_OF_QUEUE.get(name);
        void queue.process(handler.name, parallel, (job: Job<JobPayloads[JobName]>) =>
          runJob(job, () => handler.run(job.data as never), provider ? { provider } : {}),
        );
        this.served.add(queue);
      }
    }
    this.logger.log(
      { jobs: [...handlers.keys()], providers: this.config.workerProviders },
      'job handlers started',
    );
  }

  /**
   * A local pause, not close(): these Queue instances also add jobs (a finished allocation
   * dispatches the next voices), so their Redis connection must outlive the drain; @nestjs/bull
   * closes them at application shutdown.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.served.size) return;
    await Promise.all([...this.served].map((q) => q.pause(true)));
    this.logger.log({ queues: [...this.served].map((q) => q.name) }, 'job handlers drained');
  }

  /** Every @OnJob method by job name; throws when a name has none or more than one. */
  private handlers(): Map<JobName, Handler> {
    const found: Handler[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const meta = this.discovery.getMetadataByDecorator(OnJob, wrapper, method);
        if (!meta) continue;
        const fn = instance[method] as (data: never) => Promise<unknown>;
        found.push({
          name: meta.name,
          owner: `${wrapper.name}.${method}`,
          options: meta,
          run: (data) => fn.call(instance, data),
        });
      }
    }
    const problems: string[] = [];
    const byName = new Map<JobName, Handler>();
    for (const name of Object.values(JobName)) {
      const mine = found.filter((h) => h.name === name);
      if (mine.length === 1) byName.set(name, mine[0]);
      else if (!mine.length) problems.push(`job "${name}" has no handler`);
      else
        problems.push(
          `job "${name}" has ${mine.length} handlers: ${mine.map((h) => h.owner).join(', ')}`,
        );
    }
    if (problems.length) throw new Error(`refusing to start: ${problems.join('; ')}`);
    return byName;
  }
}
