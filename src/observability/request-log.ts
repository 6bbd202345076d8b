import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { runWithLogContext } from './log-context';
import { isQuietPath } from './logging';

const GIVEN_REQUEST_ID = /^[\w.-]{1,100}$/;

/**
 * The client's X-Request-Id when it is sane, so its logs and ours share an id; else a new one.
 * Fastify's genReqId, so `request.id` is this id.
 */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && GIVEN_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Request logging (Fastify hooks, mounted first in bootstrap.ts), as pino-http did it and with the same lines: every line written while serving
 * a request carries its reqId (through the log context), and one line per request, when it ends,
 * has the request, the response and the time taken ("request completed", "request aborted", or
 * "request errored" for a 5xx), at info, warn for a 4xx, error for a 5xx. Probes and scrapes get
 * no line.
 *
 * Unlike pino-http, nothing is serialized up front: pino-http built two child loggers per request
 * and serialized (and redacted) the whole request into one of them before the request was even
 * routed, whether or not its line would be written. Here the request is serialized only when its
 * line is written, by the root logger's serializers and redaction.
 */
export function requestLogging(fastify: FastifyInstance, logger: () => Logger): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    const req = request.raw;
    const reqId = request.id;
    // For the request serializer, which reads the Node request.
    (req as IncomingMessage & { id?: string }).id = reqId;
    if (!isQuietPath(req.url ?? '')) {
      const started = Date.now();
      const res = reply.raw;
      // 'close' comes after 'finish' too, so one listener sees every way a response ends.
      res.once('close', () => logRequest(logger(), req, res, reqId, Date.now() - started));
    }
    runWithLogContext({ reqId }, done);
  });
  // A body is read in stream callbacks, which run outside the context entered above: the guards
  // and the handler (which follow this hook) get it again.
  fastify.addHook('preValidation', (request, _reply, done) => {
    runWithLogContext({ reqId: request.id }, done);
  });
}

function logRequest(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  reqId: string,
  responseTime: number,
): void {
  const status = res.statusCode;
  const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
  if (!log.isLevelEnabled(level)) return;
  if (status >= 500) {
    const err = new Error(`failed with status code ${status}`);
    log[level]({ reqId, req, res, err, responseTime }, 'request errored');
    return;
  }
  const completed = !req.readableAborted && res.writableEnded;
  log[level](
    { reqId, req, res, responseTime },
    completed ? 'request completed' : 'request aborted',
  );
}
