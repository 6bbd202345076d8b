import { getQueueToken } from '@nestjs/bull';
import { Controller, Get } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
  type HealthCheckResult,
  type HealthIndicatorFunction,
} from '@nestjs/terminus';
import type { Queue } from 'bull';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { ALLOCATION_QUEUE, QueueName } from '../queue/queues';
import { SampleStorage } from '../voice/sample-storage.port';

/**
 * Liveness checks the process only (a database outage must not get pods killed); readiness checks
 * what this replica's roles need: every role Postgres and Redis; api and worker the sample
 * storage (uploads write it, metadata and allocation read it); worker the queues it serves. An
 * open provider breaker is not a readiness failure: the replica can do nothing about it, and
 * taking it out of service would only stop the other provider's work too.
 */
@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly config: AppConfig,
    private readonly moduleRef: ModuleRef,
    private readonly storage: SampleStorage,
  ) {}

  @Get('live')
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness: the process answers (no dependency is asked)', security: [] })
  checkLiveness(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: Postgres, Redis and (api, worker) sample storage answer in time',
    security: [],
  })
  checkReadiness(): Promise<HealthCheckResult> {
    const checks: HealthIndicatorFunction[] = [
      () => this.db.pingCheck('database', { timeout: 2_000 }),
      () => this.redis('redis', QueueName.Metadata),
    ];
    if (hasRole(this.config, 'api') || hasRole(this.config, 'worker')) {
      checks.push(() =>
        this.indicators
          .check('storage')
          .attempt(() => this.storage.check())
          .withTimeout(2_000),
      );
    }
    if (hasRole(this.config, 'worker')) {
      checks.push(() => this.redis('queue_maintenance', QueueName.Maintenance));
      for (const provider of this.config.workerProviders) {
        checks.push(() => this.redis(`queue_${provider}`, ALLOCATION_QUEUE[provider]));
      }
    }
    return this.health.check(checks);
  }

  private redis(key: string, queueName: QueueName) {
    const queue = this.moduleRef.get<Queue>(getQueueToken(queueName), { strict: false });
    return this.indicators
      .check(key)
      .attempt(async () => {
        const pong = await queue.client.ping();
        if (pong !== 'PONG') throw new Error('unexpected answer from Redis');
        return { waiting: await queue.getWaitingCount() };
      })
      .withTimeout(2_000);
  }
}
