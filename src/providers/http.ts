import { Readable } from 'node:stream';
import { request } from 'undici';
import type { ProviderName } from '../config/app-config';
import { asErrorLike, describe, type ErrorClassifier, parseRetryAfter } from './http-errors';
import type { MultipartBody } from './http-multipart';
import { ProviderError } from './provider-error';

// The adapters' HTTP toolkit stays importable from here, beside the client.
export {
  type ErrorClassification,
  type ErrorClassifier,
  isTransientStatus,
  parseRetryAfter,
  tryParseJson,
} from './http-errors';
export {
  INLINE_SAMPLE_BYTES,
  type MultipartBody,
  type MultipartPart,
  multipartBody,
  openSample,
} from './http-multipart';

/** Per-request budget when the caller sets none. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Largest answer read from a provider. Every answer we use (a voice, a page of voices, an account)
 * is a few KiB to a few hundred; without a cap, a broken or hostile endpoint (or a proxy's error
 * page) streaming without end would be held whole in memory by every allocation in flight.
 */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Longest provider message kept in an error: answers can be whole HTML pages from a proxy. */
const MAX_MESSAGE_CHARS = 500;

function firstHeader(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

export interface HttpClientOptions {
  provider: ProviderName;
  baseUrl: string;
  /** Sent on every request (auth, API version). */
  headers: Record<string, string>;
  timeoutMs?: number;
  classify: ErrorClassifier;
  /** Values that must never appear in an error message (the API key). */
  secrets?: Array<string | undefined>;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface HttpResult {
  status: number;
  /** The parsed JSON answer, or null for an empty body. */
  json: unknown;
}

/**
 * One HTTP call per method call, with a timeout, and every failure turned into a ProviderError.
 * There is deliberately no retry here: see VoiceProvider.
 */
export class ProviderHttpClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(private readonly opts: HttpClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async request(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    options: { query?: Query; multipart?: MultipartBody } = {},
  ): Promise<HttpResult> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const where = `${method} ${url.pathname}`;
    const headers: Record<string, string> = { accept: 'application/json', ...this.opts.headers };
    const multipart = options.multipart;
    if (multipart) headers['content-type'] = multipart.contentType;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const body = !multipart
        ? null
        : multipart.small
          ? await collect(multipart.chunks)
          : Readable.from(multipart.chunks, { objectMode: false });
      // undici's own request rather than fetch: the same client underneath, without the WHATWG
      // Request/Response/stream layers that cost an allocation more CPU than the rest of it.
      const res = await request(url, { method, headers, signal, body });
      status = res.statusCode;
      retryAfter = firstHeader(res.headers['retry-after']);
      // The body is read under the same signal: a provider that stalls mid-answer still times out.
      text = await this.readCapped(res.body, status, where);
    } catch (err) {
      if (err instanceof ProviderError) throw err;
      throw this.transportError(err, signal, multipart, where);
    } finally {
      multipart?.dispose();
    }
    if (status >= 200 && status < 300) {
      return { status, json: this.parseJson(text, status, where) };
    }
    const c = this.opts.classify(status, text);
    throw new ProviderError(
      this.opts.provider,
      c.errorClass,
      c.code,
      this.redact(`${this.opts.provider} ${where} answered ${status} ${c.code}: ${c.message}`),
      status,
      parseRetryAfter(retryAfter),
    );
  }

  /**
   * The body as text, refused past MAX_RESPONSE_BYTES as soon as it passes it (the connection is
   * dropped, not drained). Retryable like any unreadable answer: a 2xx may have done its work, and
   * the caller looks the idempotency key up before trying again.
   */
  private async readCapped(
    body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
    status: number,
    where: string,
  ): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        body.destroy();
        throw new ProviderError(
          this.opts.provider,
          'retryable',
          'invalid_response',
          `${this.opts.provider} ${where} answered ${status} with a body over ${MAX_RESPONSE_BYTES} bytes`,
          status,
        );
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private parseJson(text: string, status: number, where: string): unknown {
    if (text.trim() === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // A 2xx we cannot read may still have done its work (a create): retryable, so the caller
      // looks the idempotency key up before trying again.
      throw new ProviderError(
        this.opts.provider,
        'retryable',
        'invalid_response',
        this.redact(
          `${this.opts.provider} ${where} answered ${status} with a body that is not JSON`,
        ),
        status,
      );
    }
  }

  private transportError(
    err: unknown,
    signal: AbortSignal,
    multipart: MultipartBody | undefined,
    where: string,
  ): ProviderError {
    const p = this.opts.provider;
    if (signal.aborted || asErrorLike(err)?.name === 'TimeoutError') {
      return new ProviderError(
        p,
        'retryable',
        'timeout',
        `${p} ${where} timed out after ${this.timeoutMs} ms`,
      );
    }
    if (multipart?.sourceError !== undefined) {
      return new ProviderError(
        p,
        'retryable',
        'sample_read_failed',
        this.redact(`${p} ${where}: reading the sample failed: ${describe(multipart.sourceError)}`),
      );
    }
    return new ProviderError(
      p,
      'retryable',
      'network_error',
      this.redact(`${p} ${where} failed: ${describe(err)}`),
    );
  }

  redact(message: string): string {
    let out =
      message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
    for (const s of this.opts.secrets ?? []) {
      if (s) out = out.split(s).join('[redacted]');
    }
    return out;
  }
}
