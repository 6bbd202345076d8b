import { VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SwaggerModule } from '@nestjs/swagger';
import { openApiDocument } from './api-docs/openapi';
import { Logger, PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { ConfigError, type AppConfig } from './config/app-config';
import { hasRole } from './config/roles';
import { frameworkErrorHeaders, registerSecurityHeaders } from './common/security-headers';
import { ApiValidationPipe } from './common/api-validation.pipe';
import { runMigrations } from './database/data-source';
import { httpMetrics } from './observability/http-metrics.middleware';
import { MetricsService } from './observability/metrics.service';
import { requestIdOf, requestLogging } from './observability/request-log';

/** JSON bodies are small: no route takes more than a few fields. */
const JSON_BODY_LIMIT_BYTES = 100 * 1024;

/** Builds and starts the service for a validated configuration. Used by main.ts and by tests. */
export async function startApp(config: AppConfig): Promise<INestApplication> {
  refuseUnverifiableTokens(config);
  if (config.DB_MIGRATE === 'on') await runMigrations(config.DATABASE_URL);
  const adapter = new FastifyAdapter({
    bodyLimit: JSON_BODY_LIMIT_BYTES,
    genReqId: requestIdOf,
    // Explicit rather than Node's defaults (60 s, 300 s), so a slow-loris holding connections
    // open with headers or bodies that never finish is cut at a known time.
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
    routerOptions: {
      // Routes match case-sensitively (Fastify's default): `/V1/voices` or `/ADMIN/queues` is no
      // route (404), so every check that looks at the path sees exactly the paths that reach a
      // handler. A trailing slash names the same route, as it did on Express.
      ignoreTrailingSlash: true,
      // A parameter longer than this is refused by the router (414) before any handler.
      maxParamLength: 500,
    },
    // What the router refuses before any hook (a malformed URL) still gets the security headers.
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      frameworkErrorHeaders(request.raw, reply.raw);
      void reply.send(error);
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config),
    adapter,
    // Body parsers are registered below: JSON by Fastify, multipart left to its route.
    { bufferLogs: true, bodyParser: false },
  );
  app.useLogger(app.get(Logger));
  const fastify = app.getHttpAdapter().getInstance();
  // First, so its line times the whole request and its reqId is on every line the request writes.
  // The root logger is set when the modules are configured, before the first request.
  requestLogging(fastify, () => PinoLogger.root);
  httpMetrics(fastify, app.get(MetricsService));
  await registerSecurityHeaders(fastify);
  app.enableCors({
    // No origins configured: no CORS headers at all, so browsers keep other sites out.
    origin: config.CORS_ORIGINS.includes('*') ? true : config.CORS_ORIGINS,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'X-Request-Id'],
    maxAge: 600,
  });
  // Fastify parses JSON itself (bodyLimit above). Uploads are multipart and streamed by their
  // route from the socket, so their parser reads nothing; a body of any other type is not read
  // either, as Express left it, rather than refused with 415 on routes that take no body.
  fastify.removeContentTypeParser('text/plain');
  const unread = (_req: unknown, _payload: unknown, done: (err: null) => void) => done(null);
  fastify.addContentTypeParser('multipart/form-data', unread);
  fastify.addContentTypeParser('*', unread);
  app.enableShutdownHooks();
  app.enableVersioning({ type: VersioningType.URI, defaultVersion: undefined });
  app.useGlobalPipes(new ApiValidationPipe());
  if (hasRole(config, 'api')) {
    const document = openApiDocument(app);
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  }
  const server = app.getHttpServer();
  server.headersTimeout = config.HTTP_HEADERS_TIMEOUT_SECONDS * 1000;
  // No host: every interface, as before HOST existed (Node's default, `::` dual-stack; Fastify's
  // own default would be localhost only); config decides when that is not allowed.
  await app.listen(config.PORT, config.listenHost ?? '::');
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
