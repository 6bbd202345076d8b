import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Params } from 'nestjs-pino';
import type { AppConfig } from '../config/app-config';

/** Paths whose requests are not logged: probes and scrapes would drown the useful lines. */
const QUIET = /^\/(health\/|metrics)/;

/** Structured JSON logs; credentials never reach them. */
export function loggerParams(config: Pick<AppConfig, 'LOG_LEVEL'>): Params {
  return {
    pinoHttp: {
      level: config.LOG_LEVEL,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["xi-api-key"]',
          'req.headers["x-api-key"]',
          'res.headers["set-cookie"]',
          '*.apiKey',
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
      autoLogging: { ignore: (req: IncomingMessage) => QUIET.test(req.url ?? '') },
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    },
  };
}
