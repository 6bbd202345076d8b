import { BullAdapter } from '@bull-board/api/bullAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { BullBoardModule, type BullBoardModuleOptions } from '@bull-board/nestjs';
import { Injectable, Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { AuthModule } from '../auth/auth.module';
import { AuthService } from '../auth/auth.service';
import { RateLimiter } from '../auth/rate-limit';
import { QueueName } from '../queue/queues';
import { guardQueueBoard } from './admin-only.middleware';
import { MetricsService } from './metrics.service';
import { OpsModule } from './ops.module';
import { QUEUE_BOARD_ROUTE } from './queue-board.constants';

/** Adds the board's hooks to the app's Fastify instance before it is ready. */
@Injectable()
class QueueBoardGuard implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly auth: AuthService,
    private readonly limiter: RateLimiter,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const { auth, limiter, metrics } = this;
    guardQueueBoard(this.adapterHost.httpAdapter.getInstance<FastifyInstance>(), {
      auth,
      limiter,
      metrics,
    });
  }
}

/**
 * Bull Board at /admin/queues, for admins only (bearer token with the `admin` scope) and rate
 * limited like the admin routes: every Bull queue of the service, to inspect, retry or clean jobs.
 * Postgres stays the truth: a job removed here is found again by the sweeper.
 */
@Module({
  imports: [
    AuthModule,
    OpsModule,
    BullBoardModule.forRoot({
      route: QUEUE_BOARD_ROUTE,
      // @bull-board/fastify pins its own copy of @bull-board/api (9.10.1 beside 9.10.2): the
      // same classes at runtime, two declarations for the compiler.
      adapter: FastifyAdapter as unknown as BullBoardModuleOptions['adapter'],
      // Guarded by Fastify hooks (QueueBoardGuard), which see the parsed request and the reply.
      middleware: [],
      boardOptions: { uiConfig: { boardTitle: 'voice-slots queues' } },
    }),
    BullBoardModule.forFeature(
      ...Object.values(QueueName).map((name) => ({ name, adapter: BullAdapter })),
    ),
  ],
  providers: [QueueBoardGuard],
})
export class QueueBoardModule {}
