import { ValidationPipe, VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import type { AppConfig } from './config/app-config';
import { hasRole } from './config/roles';
import { ApiError } from './common/problem';
import { runMigrations } from './database/data-source';

/** Builds and starts the service for a validated configuration. Used by main.ts and by tests. */
export async function startApp(config: AppConfig): Promise<INestApplication> {
  if (config.DB_MIGRATE === 'on') await runMigrations(config.DATABASE_URL);
  const app = await NestFactory.create(AppModule.forRoot(config), { bufferLogs: true });
  app.useLogger(app.get(Logger));
  app.enableShutdownHooks();
  app.enableVersioning({ type: VersioningType.URI, defaultVersion: undefined });
  app.useGlobalPipes(
    new ValidationPipe({
      transform: true,
      whitelist: true,
      forbidNonWhitelisted: true,
      exceptionFactory: (errors) =>
        new ApiError(
          422,
          'validation_failed',
          errors.flatMap((e) => Object.values(e.constraints ?? {})).join('; ') || 'Invalid request',
        ),
    }),
  );
  if (hasRole(config, 'api')) {
    const document = SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('Voice slots')
        .setDescription(
          'Upload voices, wait fairly for a cloned-voice slot at a TTS provider, and get a ready remote voice id. ' +
            'Errors are application/problem+json with a stable `code`.',
        )
        .setVersion('1')
        .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
        .build(),
    );
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  }
  await app.listen(config.PORT);
  return app;
}
