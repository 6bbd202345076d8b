import { getQueueToken } from '@nestjs/bull';
import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Queue } from 'bull';
import { QueueName } from './queues';

/** Reconnections of several queues' clients within this window are one Redis comeback. */
const COALESCE_MS = 1_000;

/**
 * Tells whoever registers when Redis came back after its connection was lost. Redis may have
 * restarted empty, taking every job with it: jobs of voices still allocating or reclaiming must
 * be found again, and timers armed by runs that failed meanwhile re-armed, at once rather than at
 * the scheduler's next tick.
 */
@Injectable()
export class QueueConnections implements OnModuleInit {
  private readonly logger = new Logger(QueueConnections.name);
  private readonly callbacks: (() => void)[] = [];
  private lastFired = 0;

  constructor(private readonly moduleRef: ModuleRef) {}

  onModuleInit(): void {
    for (const name of Object.values(QueueName)) {
      const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
      let lost = false;
      queue.client.on('close', () => (lost = true));
      queue.client.on('ready', () => {
        if (!lost) return;
        lost = false;
        this.fire();
      });
    }
  }

  /** Called after Redis is reachable again following a lost connection. */
  onReconnected(callback: () => void): void {
    this.callbacks.push(callback);
  }

  private fire(): void {
    const now = Date.now();
    if (now - this.lastFired < COALESCE_MS) return;
    this.lastFired = now;
    this.logger.log('redis connection restored; re-deriving queued work');
    for (const callback of this.callbacks) {
      try {
        callback();
      } catch (err) {
        this.logger.warn({ err }, 'a redis reconnection callback failed');
      }
    }
  }
}
