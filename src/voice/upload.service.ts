import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { AppConfig } from '../config/config.module';
import { ApiError } from '../common/problem';
import type { AudioInfo } from './audio-probe';
import { MULTIPART_OVERHEAD_BYTES, sampleTooLarge, SampleFormReader } from './sample-form.reader';
import { SampleInspector, storageUnavailable } from './sample-inspector';
import {
  sampleKeyOf,
  SampleStorage,
  SampleTooLargeError,
  type StoredSample,
} from './sample-storage.port';
import { uploadFieldsSchema, type UploadFields } from './upload-fields';

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

/**
 * Streams a multipart upload straight into sample storage: the file is never buffered whole, the
 * size cap stops it mid-stream, and a rejected upload leaves no file behind. What the file is gets
 * decided from its stored bytes (type by magic numbers, then a real parse for duration), never
 * from the client's Content-Type or file name. The storage key is generated here.
 */
@Injectable()
export class UploadService {
  private readonly logger = new Logger(UploadService.name);
  private readonly form: SampleFormReader;
  private readonly inspector: SampleInspector;

  constructor(
    private readonly config: AppConfig,
    private readonly storage: SampleStorage,
  ) {
    this.form = new SampleFormReader(
      storage,
      {
        maxSampleBytes: config.MAX_SAMPLE_BYTES,
        minBytesPerSecond: config.UPLOAD_MIN_BYTES_PER_SECOND,
      },
      (key, stored) => this.discard(key, stored),
    );
    this.inspector = new SampleInspector(config, storage);
  }

  async receive(headers: IncomingHttpHeaders, body: Readable): Promise<ParsedUpload> {
    const contentType = headers['content-type'] ?? '';
    if (!contentType.toLowerCase().startsWith('multipart/form-data')) {
      throw new ApiError(415, 'unsupported_media_type', 'Send the voice as multipart/form-data');
    }
    const declared = Number(headers['content-length']);
    if (declared > this.config.MAX_SAMPLE_BYTES + MULTIPART_OVERHEAD_BYTES) {
      // Refused before reading a byte; Node discards the unread body after the answer.
      throw sampleTooLarge(this.config.MAX_SAMPLE_BYTES);
    }
    const voiceId = randomUUID();
    const key = sampleKeyOf(voiceId);
    const { stored, fields, problems, clientContentType, clientFilename } = await this.form.read(
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
      if (err instanceof SampleTooLargeError) throw sampleTooLarge(this.config.MAX_SAMPLE_BYTES);
      this.logger.error({ err }, 'sample storage failed');
      throw storageUnavailable();
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
      const audio = await this.inspector.inspect(key, sample.sizeBytes);
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
}
