import fastifyCors from '@fastify/cors';
import fastifyEtag from '@fastify/etag';
import { VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  errorCodes as fastifyErrors,
  type FastifyBodyParser,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { SwaggerModule } from '@nestjs/swagger';
import { openApiDocument } from './api-docs/openapi';
import { Logger, PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { ConfigError, type AppConfig } from './config/app-config';
import { hasRole } from './config/roles';
import { frameworkErrorHeaders, registerSecurityHeaders } from './common/security-headers';
import { ApiValidationPipe } from './common/api-validation.pipe';
import { frameworkProblem, sendProblem } from './common/problem';
import { runMigrations } from './database/data-source';
import { httpMetrics } from './ops/http-metrics.middleware';
import { MetricsService } from './ops/metrics.service';
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
    // What the router refuses before any hook (a malformed URL) is answered here, where no error
    // handler of Nest's runs: a problem document with the security headers.
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      frameworkErrorHeaders(request.raw, reply.raw);
      sendProblem(reply, frameworkProblem(error));
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
  registerSecurityHeaders(fastify);
  // Registered after the security headers, so a preflight it answers carries them too.
  await fastify.register(fastifyCors, {
    // No origins configured: no CORS headers at all, so browsers keep other sites out.
    origin: config.CORS_ORIGINS.includes('*') ? true : config.CORS_ORIGINS,
    methods: ['GET', 'POST', 'DELETE'],
    // An OPTIONS request without Origin is answered as a preflight too (204), as on Express.
    strictPreflight: false,
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'X-Request-Id'],
    maxAge: 600,
  });
  // Weak ETags and 304 for a matching If-None-Match, as Express answered before the move.
  await fastify.register(fastifyEtag, { weak: true });
  // Fastify parses JSON itself (bodyLimit above). Uploads are multipart and streamed by their
  // route from the socket, so their parser reads nothing; a body of any other type is not read
  // either, as Express left it, rather than refused with 415 on routes that take no body.
  fastify.removeContentTypeParser(['application/json', 'text/plain']);
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, utf8Json(fastify));
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
 * Fastify's JSON parser, for UTF-8 bodies only (JSON's own encoding, RFC 8259): a body declared
 * in another charset is refused with 415 rather than read as if it were UTF-8.
 */
function utf8Json(fastify: FastifyInstance): FastifyBodyParser<string> {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  return (req, body, done) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '');
    if (charset && charset[1].toLowerCase() !== 'utf-8') {
      done(
        new fastifyErrors.FST_ERR_CTP_INVALID_MEDIA_TYPE(req.headers['content-type']),
        undefined,
      );
      return;
    }
    void parse(req, body, done);
  };
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
