import { ExpressAdapter } from '@nestjs/platform-express';
import type { Response } from 'express';

type EtagFn = (body: Buffer, encoding?: BufferEncoding) => string | undefined;

/**
 * Nest's Express adapter with a shorter way out for the most common answer: a plain JSON object
 * or array to a request that is neither GET nor HEAD, so there is no conditional request to
 * answer 304 and no body to leave out. Express's res.json and res.send would look the charset up
 * by MIME type, parse and re-format the Content-Type and check freshness, to end with the same
 * body and the same three headers set here: Content-Type, Content-Length and the app's ETag.
 * Anything else (GET and HEAD, streams, errors, a Content-Type already chosen, 204/205/304) goes
 * through Nest and Express as before.
 */
export class ApiExpressAdapter extends ExpressAdapter {
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

function isPlainJson(body: unknown): body is object {
  if (typeof body !== 'object' || body === null) return false;
  if (Array.isArray(body)) return true;
  const proto: unknown = Object.getPrototypeOf(body);
  return proto === Object.prototype || proto === null;
}
