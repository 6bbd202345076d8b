import type { Params } from 'nestjs-pino';
import type { AppConfig } from '../config/app-config';
import { logMixin } from './log-context';

/** Paths whose requests are neither logged nor traced: probes and scrapes would drown the rest. */
const QUIET = /^\/(health\/|metrics)/;

export function isQuietPath(url: string): boolean {
  return QUIET.test(url);
}

/**
 * Keeps an error's type, message, code, status, stack and cause, and nothing else. pino-http hands
 * custom serializers the standard serializer's plain-object output rather than the Error itself,
 * so both shapes are read the same way.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (typeof err !== 'object' || err === null) return { message: String(err) };
  const e = err as Record<string, unknown>;
  const out: Record<string, unknown> = {
    type: typeof e.type === 'string' ? e.type : err instanceof Error ? err.name : 'Error',
    message: typeof e.message === 'string' ? e.message : 'unknown error',
  };
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
  if (typeof e.status === 'number') out.status = e.status;
  if (typeof e.stack === 'string') out.stack = e.stack;
  if (typeof e.cause === 'object' && e.cause !== null) out.cause = serializeError(e.cause);
  return out;
}

/**
 * Structured JSON logs; credentials never reach them. Every line carries the log context
 * (reqId, jobId, queue, voiceId, userId, provider: see log-context.ts) and the active
 * traceId/spanId. nestjs-pino provides Nest's logger over this root logger; the request lines are
 * written by requestLogging (request-log.ts), mounted first in bootstrap.ts, instead of
 * nestjs-pino's pino-http middleware, which is mounted on no route.
 */
export function loggerParams(config: Pick<AppConfig, 'LOG_LEVEL'>): Params {
  return {
    pinoHttp: {
      level: config.LOG_LEVEL,
      mixin: logMixin,
      // Errors are logged by their type, message, code and stack only: HTTP client errors carry
      // whole request configs (headers with keys) that redaction paths cannot reach at every depth.
      serializers: { err: serializeError },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["xi-api-key"]',
          'req.headers["x-api-key"]',
          'res.headers["set-cookie"]',
          'headers.authorization',
          '*.headers.authorization',
          '*.headers["xi-api-key"]',
          '*.headers["x-api-key"]',
          'apiKey',
          'authorization',
          'password',
          'secret',
          'token',
          '*.apiKey',
          '*.authorization',
          '*.password',
          '*.secret',
          '*.token',
        ],
        censor: '[redacted]',
      },
    },
    forRoutes: [],
  };
}
