import { hash } from 'node:crypto';

const EMPTY = 'W/"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"';

/**
 * Express's default weak ETag, to the character (the etag package's
 * W/"<length in hex>-<first 27 characters of the base64 SHA-1>"), from one crypto.hash call
 * rather than a Hash object and three calls per response. For `app.set('etag', weakEtag)`.
 */
export function weakEtag(body: string | Buffer, encoding?: BufferEncoding): string {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, encoding);
  if (buf.length === 0) return EMPTY;
  return `W/"${buf.length.toString(16)}-${hash('sha1', buf, 'base64').slice(0, 27)}"`;
}
