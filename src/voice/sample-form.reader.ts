import busboy from 'busboy';
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { ApiError } from '../common/problem';
import type { SampleStorage, StoredSample } from './sample-storage.port';

const KNOWN_FIELDS = new Set(['name', 'provider', 'language']);
/** Room for the form's own fields and part headers on top of the sample itself. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/** The upload rate is checked over windows this long, so a short stall on a mobile link passes. */
const UPLOAD_RATE_WINDOW_MS = 10_000;

export interface SampleFormLimits {
  maxSampleBytes: number;
  minBytesPerSecond: number;
}

/** What the form held: its file part streaming into storage, its fields, what was wrong with it. */
export interface SampleForm {
  stored: Promise<StoredSample> | null;
  fields: Record<string, string>;
  problems: string[];
  clientContentType: string;
  clientFilename: string;
}

export function sampleTooLarge(maxBytes: number, headers: Record<string, string> = {}): ApiError {
  return new ApiError(413, 'sample_too_large', `The sample exceeds ${maxBytes} bytes`, headers);
}

/**
 * Reads a multipart upload form, its file part streamed straight into sample storage under its
 * limits: the body's size cap, the least upload rate, the form's shape.
 */
export class SampleFormReader {
  constructor(
    private readonly storage: SampleStorage,
    private readonly limits: SampleFormLimits,
    /** Removes what a form that failed may have written. */
    private readonly discard: (key: string, stored: Promise<StoredSample> | null) => Promise<void>,
  ) {}

  /**
   * Reads the multipart body to its end. The file part streams into storage as it arrives; any
   * limit exceeded or part out of place is collected as a problem rather than thrown at once, so
   * the body is always consumed and the connection stays usable.
   */
  async read(headers: IncomingHttpHeaders, body: Readable, key: string): Promise<SampleForm> {
    // A prototype-less record: a field named `__proto__` is then just a (rejected) field.
    const fields = Object.create(null) as Record<string, string>;
    const problems = new Set<string>();
    // Assigned in busboy's callback; a holder object keeps the type checker from narrowing it away.
    const file: { stored: Promise<StoredSample> | null } = { stored: null };
    let clientContentType = 'application/octet-stream';
    let clientFilename = 'sample';

    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        defParamCharset: 'utf8',
        limits: {
          files: 1,
          fields: 10,
          fieldSize: 4096,
          parts: 12,
          headerPairs: 20,
          fileSize: this.limits.maxSampleBytes + 1,
        },
      });
    } catch {
      body.resume();
      throw new ApiError(400, 'malformed_multipart', 'The multipart body could not be parsed');
    }

    const parsed = new Promise<void>((resolve, reject) => {
      bb.on('file', (field, stream, info) => {
        if (field !== 'file' || file.stored) {
          problems.add('exactly one file part, named "file", is expected');
          // Drained, and its error (a form cut short) is the form's error, reported by busboy.
          stream.on('error', () => undefined);
          stream.resume();
          return;
        }
        clientContentType = labelOfType(info.mimeType);
        clientFilename = labelOfName(info.filename);
        file.stored = this.storage.put(key, detach(stream), this.limits.maxSampleBytes);
        // Settled by the caller; this only prevents an unhandled rejection meanwhile.
        file.stored.catch(() => undefined);
      });
      bb.on('field', (name, value, info) => {
        if (!KNOWN_FIELDS.has(name)) return;
        if (info.valueTruncated) problems.add(`${name} is too long`);
        else if (name in fields) problems.add(`${name} is given more than once`);
        else fields[name] = value;
      });
      bb.on('filesLimit', () => problems.add('exactly one file part, named "file", is expected'));
      bb.on('fieldsLimit', () => problems.add('the form has too many fields'));
      bb.on('partsLimit', () => problems.add('the form has too many parts'));
      bb.on('close', resolve);
      bb.on('error', reject);
    });
    // A client that goes away mid-upload must not leave the parse (and a half-written file)
    // waiting forever.
    const abort = (err?: Error) => {
      if (!body.readableEnded) bb.destroy(err ?? new Error('request aborted'));
    };
    body.once('error', abort);
    body.once('close', () => abort());
    // The whole body is bounded, whatever its framing: Content-Length is checked before reading,
    // but a chunked body (or junk outside the file part, which busboy drains) has no declared size.
    // Past the cap reading stops at once; the answer closes the connection rather than drain it.
    const limit = this.limits.maxSampleBytes + MULTIPART_OVERHEAD_BYTES;
    let received = 0;
    let overLimit = false;
    const count = (chunk: Buffer) => {
      received += chunk.length;
      if (received <= limit || overLimit) return;
      overLimit = true;
      body.unpipe(bb);
      body.pause();
      bb.destroy(new Error('the body exceeds the upload cap'));
    };
    body.on('data', count);
    // A client trickling bytes (slow-loris, or a link too poor to finish) holds a connection and a
    // half-written file: each window must bring at least UPLOAD_MIN_BYTES_PER_SECOND on average.
    let tooSlow = false;
    let atWindowStart = 0;
    const minPerWindow = this.limits.minBytesPerSecond * (UPLOAD_RATE_WINDOW_MS / 1000);
    const rate = setInterval(() => {
      if (received - atWindowStart >= minPerWindow || overLimit) {
        atWindowStart = received;
        return;
      }
      tooSlow = true;
      body.unpipe(bb);
      body.pause();
      bb.destroy(new Error('the upload is too slow'));
    }, UPLOAD_RATE_WINDOW_MS);
    rate.unref();
    body.pipe(bb);

    try {
      await parsed;
    } catch {
      body.unpipe(bb);
      await this.discard(key, file.stored);
      if (overLimit) throw sampleTooLarge(this.limits.maxSampleBytes, { Connection: 'close' });
      if (tooSlow) {
        throw new ApiError(
          408,
          'upload_too_slow',
          `The upload was slower than ${this.limits.minBytesPerSecond} bytes per second`,
          { Connection: 'close' },
        );
      }
      body.resume();
      throw new ApiError(400, 'malformed_multipart', 'The multipart body could not be parsed');
    } finally {
      body.off('error', abort);
      body.off('data', count);
      clearInterval(rate);
    }
    return {
      stored: file.stored,
      fields,
      problems: [...problems],
      clientContentType,
      clientFilename,
    };
  }
}

/**
 * Busboy's file stream, decoupled from the storage write: when storage gives up early (the size
 * cap), the rest of the part is drained so busboy can finish the form instead of stalling on a
 * destroyed stream; when busboy fails (a truncated form), the storage write fails with it.
 */
function detach(stream: Readable): Readable {
  const pass = new PassThrough();
  // Storage attaches its own handlers only once it starts writing (after an await); an error in
  // between must fail that write, not crash the process as an unhandled 'error' event.
  pass.on('error', () => undefined);
  stream.on('error', (err) => pass.destroy(err));
  pass.once('close', () => {
    stream.unpipe(pass);
    stream.resume();
  });
  stream.pipe(pass);
  return pass;
}

/** The client's claimed type, kept only if it looks like a MIME type (it is a label, not a fact). */
function labelOfType(mime: string): string {
  return /^[\w.+-]{1,64}\/[\w.+-]{1,128}$/.test(mime)
    ? mime.toLowerCase()
    : 'application/octet-stream';
}

/**
 * The client's file name as a display label: busboy already drops any directory part; control
 * characters (NUL would even be refused by Postgres) and format characters go too.
 */
function labelOfName(filename: string | undefined): string {
  const base = (filename ?? '').split(/[\\/]/).pop() ?? '';
  const clean = base
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '')
    .trim()
    .slice(0, 200);
  return clean && clean !== '.' && clean !== '..' ? clean : 'sample';
}
