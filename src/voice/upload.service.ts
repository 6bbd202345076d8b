import { Injectable, Logger } from '@nestjs/common';
import busboy from 'busboy';
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { PROVIDER_NAMES } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { ApiError } from '../common/problem';
import { SampleStorage, SampleTooLargeError, type StoredSample } from './sample-storage.port';

export const uploadFieldsSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'name is required')
    .max(100, 'name is at most 100 characters')
    .regex(/^[^\p{Cc}\p{Cf}]+$/u, 'name must not contain control characters'),
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
  clientContentType: string;
  clientFilename: string;
}

/**
 * Streams a multipart upload straight into sample storage: the file is never buffered whole, the
 * size cap stops it mid-stream, and a rejected upload leaves no file behind. The storage key is
 * generated here; the client's file name is kept only as a label.
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
    const voiceId = randomUUID();
    const key = `${voiceId.slice(0, 2)}/${voiceId}`;
    const fields: Record<string, string> = {};
    // Assigned in busboy's callback; a holder object keeps the type checker from narrowing it away.
    const file: { stored: Promise<StoredSample> | null } = { stored: null };
    let clientContentType = 'application/octet-stream';
    let clientFilename = 'sample';

    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        limits: {
          files: 1,
          fields: 10,
          fieldSize: 4096,
          parts: 12,
          fileSize: this.config.MAX_SAMPLE_BYTES + 1,
        },
      });
    } catch {
      throw new ApiError(400, 'malformed_multipart', 'The multipart body could not be parsed');
    }

    const parsed = new Promise<void>((resolve, reject) => {
      bb.on('file', (field, stream, info) => {
        if (field !== 'file' || file.stored) {
          stream.resume();
          return;
        }
        clientContentType = info.mimeType;
        clientFilename = info.filename ?? 'sample';
        file.stored = this.storage.put(key, stream, this.config.MAX_SAMPLE_BYTES);
        // Settled via `stored` below; this only prevents an unhandled rejection meanwhile.
        file.stored.catch(() => undefined);
      });
      bb.on('field', (name, value) => {
        fields[name] = value;
      });
      bb.on('close', resolve);
      bb.on('error', reject);
    });
    body.pipe(bb);

    try {
      await parsed;
    } catch {
      await this.discard(key, file.stored);
      throw new ApiError(400, 'malformed_multipart', 'The multipart body could not be parsed');
    }
    if (!file.stored)
      throw new ApiError(422, 'validation_failed', 'A file part named "file" is required');
    let sample: StoredSample;
    try {
      sample = await file.stored;
    } catch (err) {
      await this.storage.remove(key).catch(() => undefined);
      if (err instanceof SampleTooLargeError) {
        throw new ApiError(
          413,
          'sample_too_large',
          `The sample exceeds ${this.config.MAX_SAMPLE_BYTES} bytes`,
        );
      }
      this.logger.error({ err }, 'sample storage failed');
      throw new ApiError(503, 'storage_unavailable', 'The sample could not be stored; try again');
    }
    if (sample.sizeBytes === 0) {
      await this.storage.remove(key);
      throw new ApiError(422, 'validation_failed', 'The file is empty');
    }
    const checked = uploadFieldsSchema.safeParse(fields);
    if (!checked.success) {
      await this.storage.remove(key);
      throw new ApiError(
        422,
        'validation_failed',
        checked.error.issues.map((i) => i.message).join('; '),
      );
    }
    return { voiceId, fields: checked.data, stored: sample, clientContentType, clientFilename };
  }

  /** Removes what a failed upload may have written. */
  async discard(key: string, stored: Promise<StoredSample> | null): Promise<void> {
    if (stored) await stored.catch(() => undefined);
    await this.storage.remove(key).catch(() => undefined);
  }
}
