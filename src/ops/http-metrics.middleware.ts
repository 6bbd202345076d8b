import { context, trace } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MetricsService } from './metrics.service';
import { isQueueBoardPath, QUEUE_BOARD_ROUTE } from './queue-board.constants';

/** Label of requests no route matched (404s, scanners): one series, whatever the URL. */
const UNMATCHED = 'unmatched';
const TRACKED = Symbol('http-metrics-tracked');

/**
 * Counts and times every HTTP request by the route pattern it matched (`/v1/voices/:id`, never
 * the raw URL, so the series stay bounded), and names the request's server span after the route.
 * A Fastify request hook added before everything else (bootstrap.ts), so requests refused by a
 * guard (401/403) or the body parser count too. The queue board adds it again for its own paths
 * (queue-board.module.ts), which counts nothing twice.
 */
export function httpMetrics(fastify: FastifyInstance, metrics: MetricsService): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    trackHttpRequest(metrics, req, reply);
    done();
  });
}

export function trackHttpRequest(
  metrics: MetricsService,
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  const res = reply.raw as FastifyReply['raw'] & { [TRACKED]?: true };
  if (res[TRACKED]) return;
  res[TRACKED] = true;
  const started = performance.now();
  // The request's server span when tracing is on: this runs inside the HTTP instrumentation's
  // context, before any handler.
  const span = trace.getSpan(context.active());
  let recorded = false;
  const record = (status: number) => {
    if (recorded) return;
    recorded = true;
    const route = routeOf(req);
    metrics.recordHttpRequest(req.method, route, status, (performance.now() - started) / 1000);
    if (span && route !== UNMATCHED) {
      span.setAttribute('http.route', route);
      span.updateName(`${req.method} ${route}`);
    }
  };
  // The HTTP instrumentation knows no routes and ends its span on 'close', so a span is named on
  // 'finish', before that; without one, 'close' (which follows 'finish') is enough.
  if (span) res.once('finish', () => record(res.statusCode));
  // A client that hung up before the answer was sent: nginx's 499.
  res.once('close', () => record(res.writableFinished ? res.statusCode : 499));
}

function routeOf(req: FastifyRequest): string {
  if (isQueueBoardPath(req.url)) return `${QUEUE_BOARD_ROUTE}/*`;
  if (req.is404) return UNMATCHED;
  return req.routeOptions.url ?? UNMATCHED;
}
