import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { ProviderName } from '../config/app-config';
import { ProviderError, type ProviderErrorClass } from './provider-error';
import type { SampleUpload } from './voice-provider.port';

/** Per-request budget when the caller sets none. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Samples up to this size are read whole before the request and sent as one buffer: a typical
 * voice clip is far smaller, and a buffered body costs a fraction of the CPU of a streamed one
 * (no web-stream conversion, no chunked encoding). Larger samples stream, so memory stays bounded
 * at this size per concurrent allocation.
 */
export const INLINE_SAMPLE_BYTES = 4 * 1024 * 1024;

/**
 * Largest answer read from a provider. Every answer we use (a voice, a page of voices, an account)
 * is a few KiB to a few hundred; without a cap, a broken or hostile endpoint (or a proxy's error
 * page) streaming without end would be held whole in memory by every allocation in flight.
 */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Longest provider message kept in an error: answers can be whole HTML pages from a proxy. */
const MAX_MESSAGE_CHARS = 500;

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Null when absent or unreadable, so
 * the caller falls back to its own backoff instead of trusting a made-up number.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value == null) return null;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  // An HTTP date always names a day and a month; without letters Date.parse reads "-3" as a year.
  const at = /[a-z]/i.test(trimmed) ? Date.parse(trimmed) : NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * Opens the sample before any request is made, so a storage failure never reaches the provider
 * and never counts as an attempt there. Retryable: storage trouble is usually passing.
 */
export async function openSample(sample: SampleUpload, provider: ProviderName): Promise<Readable> {
  try {
    return await sample.open();
  } catch (err) {
    throw new ProviderError(
      provider,
      'retryable',
      'sample_read_failed',
      `${provider}: opening the sample failed: ${describe(err)}`,
    );
  }
}

export type MultipartPart =
  | { name: string; value: string }
  | {
      name: string;
      filename: string;
      contentType: string;
      stream: Readable;
      /** The stream's length when known (stored samples know theirs). */
      sizeBytes?: number;
    };

/** A multipart/form-data body produced chunk by chunk: the sample is never held whole in memory. */
export interface MultipartBody {
  contentType: string;
  chunks: AsyncIterable<Uint8Array>;
  /** Every stream part has a known size and together they fit in INLINE_SAMPLE_BYTES. */
  readonly small: boolean;
  /** Set when reading the sample failed, so that failure is not mistaken for a network error. */
  readonly sourceError: unknown;
  /** Releases the sample streams whether or not the body was sent. */
  dispose(): void;
}

/** Quoted-string escaping as browsers do it for form-data names and file names. */
function quote(value: string): string {
  return value.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export function multipartBody(parts: MultipartPart[]): MultipartBody {
  const boundary = `----voice-slots-${randomBytes(12).toString('hex')}`;
  const state: { sourceError: unknown } = { sourceError: undefined };
  const streams = parts.flatMap((p) => ('stream' in p ? [p.stream] : []));
  const streamed = parts.flatMap((p) => ('stream' in p ? [p.sizeBytes ?? Infinity] : []));
  const small = streamed.reduce((a, b) => a + b, 0) <= INLINE_SAMPLE_BYTES;
  async function* generate(): AsyncGenerator<Uint8Array> {
    try {
      for (const part of parts) {
        let head = `--${boundary}\r\nContent-Disposition: form-data; name="${quote(part.name)}"`;
        if ('stream' in part) {
          head += `; filename="${quote(part.filename)}"\r\nContent-Type: ${part.contentType}\r\n\r\n`;
          yield Buffer.from(head);
          try {
            for await (const chunk of part.stream) {
              yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
            }
          } catch (err) {
            state.sourceError = err ?? new Error('sample stream failed');
            throw err;
          }
          yield Buffer.from('\r\n');
        } else {
          yield Buffer.from(`${head}\r\n\r\n${part.value}\r\n`);
        }
      }
      yield Buffer.from(`--${boundary}--\r\n`);
    } finally {
      for (const s of streams) s.destroy();
    }
  }
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    chunks: generate(),
    small,
    get sourceError() {
      return state.sourceError;
    },
    dispose: () => streams.forEach((s) => s.destroy()),
  };
}

function firstHeader(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

export interface ErrorClassification {
  errorClass: ProviderErrorClass;
  code: string;
  message: string;
}

/** Turns a non-2xx answer into a classification, reading the provider's own error code. */
export type ErrorClassifier = (status: number, body: string) => ErrorClassification;

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

/**
 * Message plus the low-level cause fetch hides behind "fetch failed" (ECONNRESET, ...). Duck-typed:
 * errors from fetch may come from another realm (test sandboxes), where instanceof fails.
 */
function describe(err: unknown): string {
  const e = asErrorLike(err);
  if (!e) return String(err);
  const cause = asErrorLike(e.cause);
  if (!cause) return e.message;
  const code = typeof cause.code === 'string' ? ` ${cause.code}` : '';
  return `${e.message}:${code} ${cause.message}`;
}

function asErrorLike(
  value: unknown,
): { message: string; name?: unknown; code?: unknown; cause?: unknown } | null {
  return typeof value === 'object' && value !== null && 'message' in value
    ? (value as { message: string })
    : null;
}

/** Error body text for classifiers that read JSON, or null when it is not JSON. */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** The shared part of both providers' rules: throttling, server trouble and timeouts pass. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
