import { getQueueToken } from '@nestjs/bull';
import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Queue } from 'bull';
import { QueueName } from './queues';

/**
 * Bull reports failures of its own machinery (Redis errors, a throwing backoff strategy) as
 * `error` events; unheard, they leave jobs stuck without a trace. Every queue's are logged.
 */
@Injectable()
export class QueueErrorsLogger implements OnModuleInit {
  private readonly logger = new Logger('Bull');

  constructor(private readonly moduleRef: ModuleRef) {}

  onModuleInit(): void {
    for (const name of Object.values(QueueName)) {
      const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
      queue.on('error', (err: Error) => this.logger.error({ err, queue: name }, 'queue error'));
    }
  }
}
