import type { IncomingMessage, ServerResponse } from 'node:http';

type Next = (err?: unknown) => void;
export type HttpMiddleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;
type HeaderValue = Parameters<ServerResponse['setHeader']>[1];

/**
 * A header-setting middleware (helmet) run once at start, its effect replayed on every response:
 * the same headers set and removed, without re-running it. helmet rebuilds its
 * Content-Security-Policy string and walks a dozen nested middlewares on each request although,
 * with static options, what it does never depends on the request.
 *
 * Only for such middlewares: it must pass the request on synchronously and touch nothing but
 * headers (anything else on the recording response throws at start).
 */
export function constantHeaders(middleware: HttpMiddleware): HttpMiddleware {
  const set: [string, HeaderValue][] = [];
  const removed: string[] = [];
  const recorder = {
    setHeader(name: string, value: HeaderValue) {
      set.push([name, value]);
      return recorder;
    },
    removeHeader(name: string) {
      removed.push(name);
    },
    // A fresh response has no headers yet (cors's Vary handling reads before it writes).
    getHeader: () => undefined,
  };
  const sample = { method: 'GET', url: '/', headers: {} } as IncomingMessage;
  let passed = false;
  middleware(sample, recorder as unknown as ServerResponse, (err) => {
    if (err) throw err instanceof Error ? err : new Error('constantHeaders: the middleware failed');
    passed = true;
  });
  if (!passed) throw new Error('constantHeaders: the middleware did not pass the request on');
  return (_req, res, next) => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}
