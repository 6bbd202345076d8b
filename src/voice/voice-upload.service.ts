import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { ApiError } from '../common/problem';
import { AppConfig } from '../config/config.module';
import { ProviderRegistry } from '../providers/provider-registry';
import { currentTraceCarrier } from '../observability/trace-context';
import { IdempotencyRepository } from './idempotency.repository';
import { MetadataJobs } from './metadata-jobs';
import { UploadService } from './upload.service';
import type { Voice } from './voice';
import { toVoiceDto, type VoiceDto } from './voice.dto';
import { pendingLimit } from './voice-errors';
import { lockUserAndCountWaiting, VoiceAdmissionRepository } from './voice-admission.repository';
import { VoiceRepository } from './voice.repository';

export interface UploadResult {
  /** True when this answers an earlier request with the same Idempotency-Key. */
  replayed: boolean;
  response: VoiceDto;
}

/** A new voice from an upload: idempotency, the per-user admission, the insert, its metadata job. */
@Injectable()
export class VoiceUploadService {
  private readonly logger = new Logger(VoiceUploadService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly admissions: VoiceAdmissionRepository,
    private readonly uploads: UploadService,
    private readonly providers: ProviderRegistry,
    private readonly idempotency: IdempotencyRepository,
    private readonly metadataJobs: MetadataJobs,
  ) {}

  /**
   * Accepts an upload. With an Idempotency-Key (Stripe's semantics, per user, kept 24 h): a replay
   * of the same request answers the first response without creating anything; the same key with
   * a different request answers 422 idempotency_key_reused; concurrent identical requests create
   * one voice. A request that failed leaves no key behind, so the client may retry it.
   */
  async upload(
    userId: string,
    headers: IncomingHttpHeaders,
    body: Readable,
    idempotencyKey?: string,
  ): Promise<UploadResult> {
    if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
      body.resume();
      throw new ApiError(
        422,
        'validation_failed',
        'Idempotency-Key must be 1-255 visible ASCII characters',
      );
    }
    const known = idempotencyKey ? await this.idempotency.find(userId, idempotencyKey) : null;
    // A cheap early refusal before any byte is stored (replays are answered, not refused); the
    // admission below is the strict check.
    if (!known && (await this.admissions.pendingCount(userId)) >= this.config.USER_MAX_PENDING) {
      body.resume();
      throw pendingLimit(this.config.USER_MAX_PENDING);
    }
    const upload = await this.uploads.receive(headers, body);
    const fingerprint = createHash('sha256')
      .update(
        JSON.stringify([
          upload.fields.name,
          upload.fields.provider,
          upload.fields.language ?? null,
          upload.stored.sha256,
        ]),
      )
      .digest('hex');
    if (!this.providers.has(upload.fields.provider)) {
      await this.uploads.discard(upload.stored.key, null);
      throw new ApiError(
        422,
        'provider_unavailable',
        `Provider ${upload.fields.provider} is not enabled`,
      );
    }
    let created: Voice;
    try {
      created = await this.voices.transaction(async (em) => {
        if ((await lockUserAndCountWaiting(userId, em)) >= this.config.USER_MAX_PENDING) {
          throw pendingLimit(this.config.USER_MAX_PENDING);
        }
        const voice = await this.admissions.insertPending(
          {
            id: upload.voiceId,
            userId,
            name: upload.fields.name,
            provider: upload.fields.provider,
            language: upload.fields.language ?? null,
            sampleKey: upload.stored.key,
            // What the bytes are, not what the client claimed: providers get the sniffed type.
            sampleContentType: upload.audio.contentType,
            sampleFilename: upload.clientFilename.slice(0, 200),
            sampleSizeBytes: upload.stored.sizeBytes,
            sampleSha256: upload.stored.sha256,
            uploadProbe: upload.audio,
            traceContext: currentTraceCarrier(),
          },
          em,
        );
        if (
          idempotencyKey &&
          !(await this.idempotency.claim(em, userId, idempotencyKey, {
            fingerprint,
            voiceId: voice.id,
            response: toVoiceDto(voice, null),
          }))
        ) {
          throw new KeyTaken();
        }
        return voice;
      });
    } catch (err) {
      await this.uploads.discard(upload.stored.key, null);
      if (!(err instanceof KeyTaken) || !idempotencyKey) throw err;
      // Another request with this key committed first: replay it, or refuse a different request.
      const first = await this.idempotency.find(userId, idempotencyKey);
      if (!first) throw new ApiError(409, 'idempotency_conflict', 'Retry the request');
      if (first.fingerprint !== fingerprint) throw keyReused();
      return { replayed: true, response: first.response as VoiceDto };
    }
    this.logger.log(
      {
        voiceId: created.id,
        userId,
        provider: created.provider,
        sizeBytes: created.sample.sizeBytes,
      },
      'voice uploaded',
    );
    await this.metadataJobs.enqueue(created.id);
    return { replayed: false, response: toVoiceDto(created, null) };
  }
}

/** The idempotency key was committed by another request first (rolls the voice insert back). */
class KeyTaken extends Error {}

function keyReused(): ApiError {
  return new ApiError(
    422,
    'idempotency_key_reused',
    'This Idempotency-Key was used with a different request; use a new key for a new upload',
  );
}
