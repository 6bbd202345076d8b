import type {
  CorsOptions,
  CorsOptionsDelegate,
} from '@nestjs/common/interfaces/external/cors-options.interface';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { Express, Response } from 'express';
import { createRequire } from 'node:module';
import { constantHeaders, type HttpMiddleware } from './constant-headers';

type EtagFn = (body: Buffer, encoding?: BufferEncoding) => string | undefined;

const nestRequire = createRequire(require.resolve('@nestjs/platform-express'));
/** The cors package as Nest's Express adapter loads it, so both mount the same middleware. */
const cors = nestRequire('cors') as (options: CorsOptions) => HttpMiddleware;
/** Express as Nest's adapter loads it. */
const express = nestRequire('express') as () => Express;

/**
 * Nest's Express adapter with cheaper CORS for requests without an Origin (corsMiddleware) and a
 * shorter way out for the most common answer: a plain JSON object
 * or array to a request that is neither GET nor HEAD, so there is no conditional request to
 * answer 304 and no body to leave out. Express's res.json and res.send would look the charset up
 * by MIME type, parse and re-format the Content-Type and check freshness, to end with the same
 * body and the same three headers set here: Content-Type, Content-Length and the app's ETag.
 * Anything else (GET and HEAD, streams, errors, a Content-Type already chosen, 204/205/304) goes
 * through Nest and Express as before.
 */
export class ApiExpressAdapter extends ExpressAdapter {
  /**
   * Routes match case-sensitively: `/V1/voices` or `/ADMIN/queues` is no route (404), so every
   * check that looks at the path (security headers, no-store, the API-path scope fallback, the
   * queue board's mount) sees exactly the paths that reach a handler. The router is created by
   * the adapter's constructor, so the setting has to be on the instance it is given.
   */
  constructor() {
    const app = express();
    app.set('case sensitive routing', true);
    super(app);
  }

  override enableCors(options: CorsOptions | CorsOptionsDelegate<unknown>): void {
    if (typeof options === 'function') super.enableCors(options);
    else this.use(corsMiddleware(options));
  }

  override reply(response: Response, body: unknown, statusCode?: number): unknown {
    const method = response.req.method;
    if (
      method === 'GET' ||
      method === 'HEAD' ||
      !isPlainJson(body) ||
      response.getHeader('Content-Type') !== undefined
    ) {
      return super.reply(response, body, statusCode);
    }
    if (statusCode !== undefined && statusCode !== null) response.status(statusCode);
    const status = response.statusCode;
    if (status === 204 || status === 205 || status === 304) return super.reply(response, body);
    const buf = Buffer.from(JSON.stringify(body));
    response.setHeader('Content-Type', 'application/json; charset=utf-8');
    response.setHeader('Content-Length', buf.length);
    const etag = response.app.get('etag fn') as EtagFn | undefined;
    if (etag && response.getHeader('ETag') === undefined) {
      const tag = etag(buf);
      if (tag) response.setHeader('ETag', tag);
    }
    response.end(buf);
    return response;
  }
}

/**
 * CORS as Nest mounts it, except that a request without an Origin header (an app backend, not a
 * browser) that is not a preflight gets the headers cors gives every such request (Vary: Origin,
 * Access-Control-Expose-Headers), recorded once, instead of running cors's option callbacks.
 * Nothing mounted before it sets Vary, which cors would otherwise extend rather than set.
 */
export function corsMiddleware(options: CorsOptions): HttpMiddleware {
  const full = cors(options);
  const originless = constantHeaders(full);
  return (req, res, next) =>
    req.headers.origin === undefined && req.method !== 'OPTIONS'
      ? originless(req, res, next)
      : full(req, res, next);
}

function isPlainJson(body: unknown): body is object {
  if (typeof body !== 'object' || body === null) return false;
  if (Array.isArray(body)) return true;
  const proto: unknown = Object.getPrototypeOf(body);
  return proto === Object.prototype || proto === null;
}
