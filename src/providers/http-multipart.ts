import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ProviderName } from '../config/app-config';
import { describe } from './http-errors';
import { ProviderError } from './provider-error';
import type { SampleUpload } from './voice-provider.port';

/** The upload of a sample to a provider: opened first, then sent as multipart/form-data. */

/**
 * Samples up to this size are read whole before the request and sent as one buffer: a typical
 * voice clip is far smaller, and a buffered body costs a fraction of the CPU of a streamed one
 * (no web-stream conversion, no chunked encoding). Larger samples stream, so memory stays bounded
 * at this size per concurrent allocation.
 */
export const INLINE_SAMPLE_BYTES = 4 * 1024 * 1024;

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
