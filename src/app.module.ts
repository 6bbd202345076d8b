import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import type { AppConfig } from './config/app-config';
import { AdminModule } from './ops/admin.module';
import { ApiDocsModule } from './api-docs/api-docs.module';
import { AuthModule } from './auth/auth.module';
import { ProblemFilter } from './common/problem';
import { rateLimitModule } from './auth/rate-limit';
import { ConfigModule } from './config/config.module';
import { hasRole } from './config/roles';
import { DatabaseModule } from './database/database.module';
import { loggerParams } from './observability/logging';
import { ObservabilityModule } from './observability/observability.module';
import { OpsModule } from './ops/ops.module';
import { QueueBoardModule } from './ops/queue-board.module';
import { QueueModule } from './queue/queue.module';
import { SchedulerModule } from './scheduler/scheduler.module';
import { VoiceApiModule } from './voice/voice-api.module';
import { VoiceModule } from './voice/voice.module';
import { VoiceEventStreamModule } from './webhooks/voice-event-stream.module';
import { WebhooksModule } from './webhooks/webhooks.module';

/** The whole service; the roles of this replica decide which routes and processors are mounted. */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(loggerParams(config)),
        DatabaseModule,
        QueueModule,
        AuthModule,
        ObservabilityModule,
        OpsModule,
        VoiceModule,
        SchedulerModule,
        WebhooksModule,
        ...(hasRole(config, 'api')
          ? [
              rateLimitModule(),
              VoiceEventStreamModule,
              VoiceApiModule,
              AdminModule,
              QueueBoardModule,
              ApiDocsModule,
            ]
          : []),
      ],
      providers: [{ provide: APP_FILTER, useClass: ProblemFilter }],
    };
  }
}
