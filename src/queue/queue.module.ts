import { BullModule } from '@nestjs/bull';
import { Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { AppConfig } from '../config/config.module';
import { backoffDelayMs } from './backoff';
import { QueueConnections } from './queue-connections';
import { JobRunner } from './job-runner';
import { QueueErrorsLogger } from './queue-errors.logger';
import { QueueName, RETRY_BACKOFF } from './queues';

const ALL_QUEUES = Object.values(QueueName);

@Global()
@Module({
  imports: [
    DiscoveryModule,
    BullModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        url: config.REDIS_URL,
        prefix: config.QUEUE_PREFIX,
        redis: {
          // Bull's own strategy waits e^n ms between attempts, up to 20 s: after a few seconds
          // without Redis, a restarted Redis would be found up to 20 s late. Retry steadily.
          retryStrategy: (times: number) => Math.min(100 * times, 1_000),
          connectTimeout: 5_000,
        },
        defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
        settings: {
          // A killed or frozen worker's job (an allocation, a reclaim holding its slot) is picked
          // up again within lockDuration + stalledInterval (~15 s) instead of ~45 s; a live worker
          // renews its lock every 5 s. A rerun beside a worker that was only slow is safe: the
          // fencing token and the idempotency-key lookup let one of them win.
          lockDuration: 10_000,
          stalledInterval: 5_000,
          maxStalledCount: 2,
          // Bull passes strategy options as a third argument; only the first two are ours.
          backoffStrategies: {
            [RETRY_BACKOFF]: (attemptsMade: number, err: Error) =>
              backoffDelayMs(attemptsMade, err),
          },
        },
      }),
    }),
    BullModule.registerQueue(...ALL_QUEUES.map((name) => ({ name }))),
  ],
  providers: [QueueErrorsLogger, QueueConnections, JobRunner],
  exports: [BullModule, QueueConnections],
})
export class QueueModule {}
