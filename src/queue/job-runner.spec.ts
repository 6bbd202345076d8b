import { Injectable, Logger, Module } from '@nestjs/common';
import { DiscoveryModule, NestFactory } from '@nestjs/core';
import { AppConfig } from '../config/config.module';
import { JobRunner, OnJob } from './job-runner';
import { JobName } from './queues';

/** One handler per job name, as the application has them (each returns its name). */
@Injectable()
class AllJobs {
  @OnJob({ name: JobName.ExtractMetadata, concurrency: 1 })
  extract() {
    return Promise.resolve(JobName.ExtractMetadata);
  }
  @OnJob({ name: JobName.Allocate, concurrency: 1 })
  allocate() {
    return Promise.resolve(JobName.Allocate);
  }
  @OnJob({ name: JobName.RemoteCleanup, concurrency: 1 })
  cleanup() {
    return Promise.resolve(JobName.RemoteCleanup);
  }
  @OnJob({ name: JobName.Reclaim, concurrency: 1 })
  reclaim() {
    return Promise.resolve(JobName.Reclaim);
  }
}

@Injectable()
class Reconciler {
  @OnJob({ name: JobName.Reconcile, concurrency: 1 })
  reconcile() {
    return Promise.resolve(JobName.Reconcile);
  }
}

@Injectable()
class SecondAllocator {
  @OnJob({ name: JobName.Allocate, concurrency: 2 })
  allocate() {
    return Promise.resolve('second');
  }
}

/** Boots a module with these handler classes on an api-only replica (no queue is touched). */
async function boot(...handlers: (new (...args: never[]) => object)[]): Promise<void> {
  @Module({
    imports: [DiscoveryModule],
    providers: [
      ...handlers,
      JobRunner,
      { provide: AppConfig, useValue: { roles: new Set(['api']), workerProviders: [] } },
    ],
  })
  class Application {}
  const app = await NestFactory.createApplicationContext(Application, {
    logger: false,
    abortOnError: false,
  });
  await app.close();
}

describe('JobRunner', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  it('boots when every job name has exactly one handler', async () => {
    await expect(boot(AllJobs, Reconciler)).resolves.toBeUndefined();
  });

  it('refuses to boot when a job name has no handler, naming it', async () => {
    await expect(boot(AllJobs)).rejects.toThrow('job "reconcile" has no handler');
  });

  it('refuses to boot when a job name has two handlers, naming both', async () => {
    await expect(boot(AllJobs, Reconciler, SecondAllocator)).rejects.toThrow(
      'job "allocate" has 2 handlers: AllJobs.allocate, SecondAllocator.allocate',
    );
  });
});
