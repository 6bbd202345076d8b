import { Injectable, Logger } from '@nestjs/common';
import busboy from 'busboy';
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { z } from 'zod';
import { PROVIDER_NAMES } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { ApiError } from '../common/problem';
import { probeAudio, sniffAudio, UnreadableAudioError, type AudioInfo } from './audio-probe';
import {
  sampleKeyOf,
  SampleStorage,
  SampleTooLargeError,
  type StoredSample,
} from './sample-storage.port';

export const uploadFieldsSchema = z.object({
  name: z
    .string()
    .trim()
    .normalize('NFC')
    .min(1, 'name is required')
    .max(100, 'name is at most 100 characters')
    // Control and format characters (bidi overrides, zero-width spaces) and line separators make
    // names that display as something else; the joiners that emoji sequences need stay allowed.
    .regex(
      /^(?:(?![\u200c\u200d])[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\u200c\u200d])+$/u,
      'name must not contain control characters',
    ),
  provider: z.enum(PROVIDER_NAMES, { message: 'provider must be elevenlabs or cartesia' }),
  language: z
    .string()
    .regex(/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/, 'language must be a language tag such as en or pt-BR')
    .optional(),
});
export type UploadFields = z.infer<typeof uploadFieldsSchema>;

export interface ParsedUpload {
  voiceId: string;
  fields: UploadFields;
  stored: StoredSample;
  /** What the client claimed; a label only. `audio.contentType` is what the bytes are. */
  clientContentType: string;
  /** The client's file name, stripped of paths and control characters; a label only. */
  clientFilename: string;
  /** Format, duration and true content type, read from the stored bytes at upload. */
  audio: AudioInfo;
}

const KNOWN_FIELDS = new Set(['name', 'provider', 'language']);
/** Room for the form's own fields and part headers on top of the sample itself. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/** A probe that takes longer than this is chewing on something that is not a recording. */
const PROBE_TIMEOUT_MS = 15_000;

/** The upload rate is checked over windows this long, so a short stall on a mobile link passes. */
const UPLOAD_RATE_WINDOW_MS = 10_000;

/**
 * Streams a multipart upload straight into sample storage: the file is never buffered whole, the
 * size cap stops it mid-stream, and a rejected upload leaves no file behind. What the file is gets
 * decided from its stored bytes (type by magic numbers, then a real parse for duration), never
 * from the client's Content-Type or file name. The storage key is generated here.
 */
@Injectable()
export class UploadService {
  private readonly logger = new Logger(UploadService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly storage: SampleStorage,
  ) {}

  async receive(headers: IncomingHttpHeaders, body: Readable): Promise<ParsedUpload> {
    const contentType = headers['content-type'] ?? '';
    if (!contentType.toLowerCase().startsWith('multipart/form-data')) {
      throw new ApiError(415, 'unsupported_media_type', 'Send the voice as multipart/form-data');
    }
    const declared = Number(headers['content-length']);
    if (declared > this.config.MAX_SAMPLE_BYTES + MULTIPART_OVERHEAD_BYTES) {
      // Refused before reading a byte; Node discards the unread body after the answer.
      throw this.tooLarge();
    }
    const voiceId = randomUUID();
    const key = sampleKeyOf(voiceId);
    const { stored, fields, problems, clientContentType, clientFilename } = await this.parse(
      headers,
      body,
      key,
    );

    if (problems.length) {
      await this.discard(key, stored);
      throw new ApiError(422, 'validation_failed', problems.join('; '));
    }
    if (!stored) {
      throw new ApiError(422, 'validation_failed', 'A file part named "file" is required');
    }
    let sample: StoredSample;
    try {
      sample = await stored;
    } catch (err) {
      await this.discard(key, null);
      if (err instanceof SampleTooLargeError) throw this.tooLarge();
      this.logger.error({ err }, 'sample storage failed');
      throw this.storageUnavailable();
    }
    try {
      if (sample.sizeBytes === 0) {
        throw new ApiError(422, 'validation_failed', 'The file is empty');
      }
      const checked = uploadFieldsSchema.safeParse(fields);
      if (!checked.success) {
        throw new ApiError(
          422,
          'validation_failed',
          checked.error.issues.map((i) => i.message).join('; '),
        );
      }
      const audio = await this.inspect(key, sample.sizeBytes);
      return {
        voiceId,
        fields: checked.data,
        stored: sample,
        clientContentType,
        clientFilename,
        audio,
      };
    } catch (err) {
      await this.discard(key, null);
      throw err;
    }
  }

  /**
   * Removes what a failed upload may have written. A removal that fails leaves a sample with no
   * row: logged here, and removed by the orphan sweep (SampleSweeperService) once it is old enough.
   */
  async discard(key: string, stored: Promise<StoredSample> | null): Promise<void> {
    if (stored) await stored.catch(() => undefined);
    await this.storage
      .remove(key)
      .catch((err: unknown) =>
        this.logger.warn({ err, key }, 'could not remove a refused sample; the orphan sweep will'),
      );
  }

  /**
   * Reads the multipart body to its end. The file part streams into storage as it arrives; any
   * limit exceeded or part out of place is collected as a problem rather than thrown at once, so
   * the body is always consumed and the connection stays usable.
   */
  private async parse(
    headers: IncomingHttpHeaders,
    body: Readable,
    key: string,
  ): Promise<{
    stored: Promise<StoredSample> | null;
    fields: Record<string, string>;
    problems: string[];
    clientContentType: string;
    clientFilename: string;
  }> {
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
          fileSize: this.config.MAX_SAMPLE_BYTES + 1,
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
        file.stored = this.storage.put(key, detach(stream), this.config.MAX_SAMPLE_BYTES);
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
    const limit = this.config.MAX_SAMPLE_BYTES + MULTIPART_OVERHEAD_BYTES;
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
    const minPerWindow = this.config.UPLOAD_MIN_BYTES_PER_SECOND * (UPLOAD_RATE_WINDOW_MS / 1000);
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
      if (overLimit) throw this.tooLarge({ Connection: 'close' });
      if (tooSlow) {
        throw new ApiError(
          408,
          'upload_too_slow',
          `The upload was slower than ${this.config.UPLOAD_MIN_BYTES_PER_SECOND} bytes per second`,
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

  /**
   * Decides what the stored sample is: 415 unless its bytes are an accepted audio format, 422 when
   * it cannot be parsed or its duration is out of bounds. Reads the sample back from storage as a
   * stream, twice (type, then duration), never whole.
   */
  private async inspect(key: string, sizeBytes: number): Promise<AudioInfo> {
    const type = await sniffAudio(await this.open(key)).catch((err: unknown) => {
      this.logger.error({ err }, 'stored sample could not be read back');
      throw this.storageUnavailable();
    });
    if (!type) {
      throw new ApiError(
        415,
        'unsupported_media_type',
        'The file is not a supported audio format (wav, mp3, flac, ogg, webm, m4a)',
      );
    }
    const stream = await this.open(key);
    // Ending the stream ends the parse: a probe still busy after this long is chewing on junk.
    const timer = setTimeout(
      () => stream.destroy(new UnreadableAudioError('the audio took too long to read')),
      PROBE_TIMEOUT_MS,
    );
    let audio: AudioInfo;
    try {
      audio = await probeAudio(stream, sizeBytes);
    } catch (err) {
      // The parser's text names offsets, atoms and sometimes paths: for the log, not the client.
      this.logger.warn(
        { reason: err instanceof Error ? err.message : String(err) },
        'upload unreadable',
      );
      throw new ApiError(422, 'sample_unreadable', 'The audio could not be read');
    } finally {
      clearTimeout(timer);
    }
    if (type.mime.startsWith('video/') && audio.channels === null && audio.sampleRate === null) {
      throw new ApiError(415, 'unsupported_media_type', 'The file has no audio track');
    }
    const seconds = audio.durationMs / 1000;
    const { MIN_SAMPLE_SECONDS: min, MAX_SAMPLE_SECONDS: max } = this.config;
    if (seconds < min || seconds > max) {
      throw new ApiError(
        422,
        seconds < min ? 'sample_too_short' : 'sample_too_long',
        `The sample lasts ${seconds.toFixed(2)} s; accepted: ${min}–${max} s`,
      );
    }
    return audio;
  }

  private async open(key: string): Promise<Readable> {
    try {
      return await this.storage.open(key);
    } catch (err) {
      this.logger.error({ err }, 'stored sample could not be read back');
      throw this.storageUnavailable();
    }
  }

  private storageUnavailable(): ApiError {
    return new ApiError(503, 'storage_unavailable', 'The sample could not be stored; try again');
  }

  private tooLarge(headers: Record<string, string> = {}): ApiError {
    return new ApiError(
      413,
      'sample_too_large',
      `The sample exceeds ${this.config.MAX_SAMPLE_BYTES} bytes`,
      headers,
    );
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
