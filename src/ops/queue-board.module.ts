import { BullAdapter } from '@bull-board/api/bullAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { BullBoardModule, type BullBoardModuleOptions } from '@bull-board/nestjs';
import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { AuthService } from '../auth/auth.service';
import { RateLimiter, rateLimitMiddleware } from '../common/rate-limit';
import { QueueName } from '../queue/queues';
import { adminOnly, problemErrors } from './admin-only.middleware';
import { httpMetrics } from './http-metrics.middleware';
import { MetricsService } from './metrics.service';
import { OpsModule } from './ops.module';
import { QUEUE_BOARD_ROUTE } from './queue-board.constants';

/**
 * Bull Board at /admin/queues, for admins only (bearer token with the `admin` scope) and rate
 * limited like the admin routes: every Bull queue of the service, to inspect, retry or clean jobs.
 * Postgres stays the truth: a job removed here is found again by the sweeper.
 */
@Module({
  imports: [
    BullBoardModule.forRootAsync({
      imports: [AuthModule, OpsModule],
      inject: [AuthService, MetricsService, RateLimiter],
      useFactory: (auth: AuthService, metrics: MetricsService, limiter: RateLimiter) => ({
        route: QUEUE_BOARD_ROUTE,
        // @bull-board/express pins its own copy of @bull-board/api (9.10.1 beside 9.10.2): the
        // same classes at runtime, two declarations for the compiler.
        adapter: ExpressAdapter as unknown as BullBoardModuleOptions['adapter'],
        // The admin's reads and writes budgets, as on the admin routes.
        middleware: [
          httpMetrics(metrics),
          problemErrors(),
          adminOnly(auth),
          rateLimitMiddleware(limiter),
        ],
        boardOptions: { uiConfig: { boardTitle: 'voice-slots queues' } },
      }),
    }),
    BullBoardModule.forFeature(
      ...Object.values(QueueName).map((name) => ({ name, adapter: BullAdapter })),
    ),
  ],
})
export class QueueBoardModule {}
