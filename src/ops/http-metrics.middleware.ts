import { context, trace } from '@opentelemetry/api';
import type { NextFunction, Request, Response } from 'express';
import { MetricsService } from './metrics.service';
import { QUEUE_BOARD_ROUTE } from './queue-board.constants';

/** Label of requests no route matched (404s, scanners): one series, whatever the URL. */
const UNMATCHED = 'unmatched';
const TRACKED = Symbol('http-metrics-tracked');

/**
 * Counts and times every HTTP request by the route pattern it matched (`/v1/voices/:id`, never
 * the raw URL, so the series stay bounded), and names the request's server span after the route.
 * Plain Express middleware mounted before everything else (bootstrap.ts), so requests refused by
 * a guard (401/403) or a body parser count too. Tools mounted beside Nest's routes (Bull Board)
 * mount it again in front of themselves, which counts nothing twice.
 */
export function httpMetrics(metrics: MetricsService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    trackHttpRequest(metrics, req, res);
    next();
  };
}

function trackHttpRequest(metrics: MetricsService, req: Request, res: Response): void {
  const marked = res as Response & { [TRACKED]?: true };
  if (marked[TRACKED]) return;
  marked[TRACKED] = true;
  const started = performance.now();
  // The request's server span when tracing is on: this runs inside the HTTP instrumentation's
  // context, before any route is known.
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

function routeOf(req: Request): string {
  if (req.originalUrl.startsWith(QUEUE_BOARD_ROUTE)) return `${QUEUE_BOARD_ROUTE}/*`;
  const path: unknown = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : UNMATCHED;
}
