import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Params } from 'nestjs-pino';
import type { AppConfig } from '../config/app-config';
import { logMixin } from './log-context';

/** Paths whose requests are neither logged nor traced: probes and scrapes would drown the rest. */
const QUIET = /^\/(health\/|metrics)/;

export function isQuietPath(url: string): boolean {
  return QUIET.test(url);
}

/**
 * Structured JSON logs; credentials never reach them. Every line carries the log context
 * (jobId, queue, voiceId, userId, provider: see log-context.ts) and the active traceId/spanId;
 * lines written while serving a request carry its reqId.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const { code, status } = err as { code?: unknown; status?: unknown };
  return {
    type: err.name,
    message: err.message,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(typeof status === 'number' ? { status } : {}),
    stack: err.stack,
    ...(err.cause instanceof Error ? { cause: serializeError(err.cause) } : {}),
  };
}

export function loggerParams(config: Pick<AppConfig, 'LOG_LEVEL'>): Params {
  return {
    pinoHttp: {
      level: config.LOG_LEVEL,
      mixin: logMixin,
      // Lines inside a request carry its reqId only; the one "request completed" line has the rest.
      quietReqLogger: true,
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
      genReqId: (req: IncomingMessage) => {
        const given = req.headers['x-request-id'];
        return typeof given === 'string' && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
      },
      autoLogging: { ignore: (req: IncomingMessage) => isQuietPath(req.url ?? '') },
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    },
  };
}
