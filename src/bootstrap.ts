import type { Server } from 'node:http';
import { VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { openApiDocument } from './api-docs/openapi';
import { Logger, PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { ConfigError, type AppConfig } from './config/app-config';
import { hasRole } from './config/roles';
import { securityHeaders } from './common/security-headers';
import { ApiExpressAdapter } from './common/api-express.adapter';
import { ApiValidationPipe } from './common/api-validation.pipe';
import { weakEtag } from './common/etag';
import { runMigrations } from './database/data-source';
import { httpMetrics } from './ops/http-metrics.middleware';
import { MetricsService } from './ops/metrics.service';
import { requestLogging } from './observability/request-log';

const JSON_BODY_LIMIT = '100kb';

/** Builds and starts the service for a validated configuration. Used by main.ts and by tests. */
export async function startApp(config: AppConfig): Promise<INestApplication> {
  refuseUnverifiableTokens(config);
  if (config.DB_MIGRATE === 'on') await runMigrations(config.DATABASE_URL);
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot(config),
    new ApiExpressAdapter(),
    {
      bufferLogs: true,
      // Registered below with explicit limits instead of Nest's defaults.
      bodyParser: false,
    },
  );
  app.useLogger(app.get(Logger));
  // First, so its line times the whole request and its reqId is on every line the request writes.
  // The root logger is set when the modules are configured, before the first request.
  app.use(requestLogging(() => PinoLogger.root));
  app.use(httpMetrics(app.get(MetricsService)));
  // helmet's headers, recorded once and replayed (src/common/security-headers.ts); Express need
  // not set X-Powered-By in the first place.
  app.disable('x-powered-by');
  app.set('etag', weakEtag);
  app.use(securityHeaders());
  app.enableCors({
    // No origins configured: no CORS headers at all, so browsers keep other sites out.
    origin: config.CORS_ORIGINS.includes('*') ? true : config.CORS_ORIGINS,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'X-Request-Id'],
    maxAge: 600,
  });
  // JSON bodies are small (no route takes more than a few fields); uploads are multipart and
  // streamed by their route, never through a body parser.
  app.useBodyParser('json', { limit: JSON_BODY_LIMIT });
  app.useBodyParser('urlencoded', { limit: JSON_BODY_LIMIT, extended: false, parameterLimit: 100 });
  app.enableShutdownHooks();
  app.enableVersioning({ type: VersioningType.URI, defaultVersion: undefined });
  app.useGlobalPipes(new ApiValidationPipe());
  if (hasRole(config, 'api')) {
    const document = openApiDocument(app);
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  }
  // Explicit rather than Node's defaults (60 s, 300 s), so a slow-loris holding connections open
  // with headers or bodies that never finish is cut at a known time.
  const server: Server = app.getHttpServer();
  server.headersTimeout = config.HTTP_HEADERS_TIMEOUT_SECONDS * 1000;
  server.requestTimeout = config.HTTP_REQUEST_TIMEOUT_SECONDS * 1000;
  // No host: every interface, as before HOST existed; config decides when that is not allowed.
  if (config.listenHost === undefined) await app.listen(config.PORT);
  else await app.listen(config.PORT, config.listenHost);
  return app;
}

/**
 * Tokens from an identity provider are only as narrow as the claims checked: without an issuer and
 * an audience, any token the provider ever signed, for any application, would be accepted.
 */
function refuseUnverifiableTokens(config: AppConfig): void {
  if (!config.AUTH_JWKS_URL) return;
  const missing = (['AUTH_ISSUER', 'AUTH_AUDIENCE'] as const).filter((k) => !config[k]);
  if (missing.length) {
    throw new ConfigError(
      `Invalid configuration:\n${missing.map((k) => `  ${k}: required when AUTH_JWKS_URL is set`).join('\n')}`,
    );
  }
}
