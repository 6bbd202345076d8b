import { whileDatabaseReturns } from '../common/database-errors';
import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { budgetSettings } from '../policy/clone-budget';
import { ApiError } from '../common/problem';
import { isUuid } from '../common/uuid';
import { ProviderRegistry } from '../providers/provider-registry';
import { addJobReplacingFinished } from '../queue/add-job';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { currentTraceCarrier } from '../queue/trace-context';
import { IdempotencyRepository } from './idempotency.repository';
import { LastUseRecorder } from './last-use.recorder';
import { ReadyVoiceCache, type ReadTicket } from './ready-voice.cache';
import { UploadService } from './upload.service';
import { toVoiceDto, type VoiceDto } from './voice.dto';
import type { Voice } from './voice';
import { LongPollGate } from './long-poll.gate';
import { VoiceEventsListener } from './voice-events.listener';
import type { VoiceStatus } from './voice-status';
import {
  secondsFromNow,
  sql,
  usageSet,
  VoiceRepository,
  type QueueInfo,
  type QueueInfoOptions,
} from './voice.repository';
import { publicFailure } from './public-failure';

export interface VoiceView {
  voice: Voice;
  queue: QueueInfo | null;
}

export interface UploadResult {
  /** True when this answers an earlier request with the same Idempotency-Key. */
  replayed: boolean;
  response: VoiceDto;
}

export interface ActivationResult extends VoiceView {
  ready: boolean;
}

/** The user-facing use cases of voices: upload, read, list, activate, delete. */
@Injectable()
export class VoiceService {
  private readonly logger = new Logger(VoiceService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly uploads: UploadService,
    private readonly providers: ProviderRegistry,
    private readonly listener: VoiceEventsListener,
    private readonly lastUse: LastUseRecorder,
    private readonly readyVoices: ReadyVoiceCache,
    private readonly idempotency: IdempotencyRepository,
    private readonly longPolls: LongPollGate,
    @InjectQueue(QueueName.Metadata) private readonly metadataQueue: Queue,
  ) {}

  private get queueInfoOptions(): QueueInfoOptions {
    return {
      budget: budgetSettings(this.config),
      allocationLeaseSeconds: this.config.ALLOCATION_LEASE_SECONDS,
      positionMax: this.config.QUEUE_POSITION_MAX,
    };
  }

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
    if (!known && (await this.voices.pendingCount(userId)) >= this.config.USER_MAX_PENDING) {
      body.resume();
      throw this.pendingLimit();
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
        if (
          (await this.voices.lockUserAndCountWaiting(userId, em)) >= this.config.USER_MAX_PENDING
        ) {
          throw this.pendingLimit();
        }
        const voice = await this.voices.insertPending(
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
    await this.enqueueMetadata(created.id);
    return { replayed: false, response: toVoiceDto(created, null) };
  }

  private pendingLimit(): ApiError {
    return new ApiError(
      429,
      'user_pending_limit',
      `At most ${this.config.USER_MAX_PENDING} voices may wait for a slot per user`,
    );
  }

  /** A lost enqueue is not fatal: the scheduler re-enqueues pending voices it finds. */
  async enqueueMetadata(voiceId: string): Promise<void> {
    const data: JobPayloads[JobName.ExtractMetadata] = { voiceId, trace: currentTraceCarrier() };
    // A failed job of the same id is replaced: the sweep's re-enqueue must not be dropped.
    await addJobReplacingFinished(this.metadataQueue, JobName.ExtractMetadata, data, {
      jobId: `metadata:${voiceId}`,
      attempts: 5,
      backoff: { type: 'exponential', delay: 1_000 },
    }).catch((err: unknown) =>
      this.logger.warn({ err, voiceId }, 'metadata enqueue failed; the sweeper will retry'),
    );
  }

  async get(userId: string | undefined, id: string): Promise<VoiceView> {
    const voice = await this.voices.findById(id, userId);
    if (!voice) throw notFound();
    return { voice, queue: await this.voices.queuePosition(voice, this.queueInfoOptions) };
  }

  async list(query: {
    userId?: string;
    status?: VoiceStatus;
    provider?: ProviderName;
    limit: number;
    cursor?: string;
  }): Promise<{ items: Voice[]; nextCursor: string | null }> {
    const after = query.cursor ? decodeCursor(query.cursor) : undefined;
    const items = await this.voices.list({ ...query, after, limit: query.limit + 1 });
    const more = items.length > query.limit;
    const page = items.slice(0, query.limit);
    const last = page[page.length - 1];
    return { items: page, nextCursor: more && last ? encodeCursor(last) : null };
  }

  /**
   * Makes a voice usable: a ready voice gets its lease extended at once; a reclaimed one queues
   * again (twice-called, it still queues once: the transition is compare-and-set); the rest report
   * their place. With waitSeconds, waits for `ready` on the commit notification.
   */
  async activate(userId: string, id: string, waitSeconds: number): Promise<ActivationResult> {
    // The hot path: a ready voice of this user, read moments ago, whose lease has time to run.
    const now = Date.now();
    const cached = this.readyVoices.get(id, userId, now);
    if (cached && this.leaseHasHalfLeft(cached, now)) return this.answerWithoutWrite(cached, now);
    // A request that meets a Postgres restart waits for it (a few seconds at most) rather than
    // failing: every step below is a read or a compare-and-set, safe to run again.
    return whileDatabaseReturns(() => this.activateUncached(userId, id, waitSeconds, now));
  }

  private async activateUncached(
    userId: string,
    id: string,
    waitSeconds: number,
    now: number,
  ): Promise<ActivationResult> {
    // Over the cap of waiting activations, this one answers at once (see LongPollGate).
    const release = waitSeconds > 0 ? this.longPolls.tryEnter(userId) : null;
    let subscription: Awaited<ReturnType<VoiceEventsListener['subscribe']>> | null = null;
    try {
      if (release)
        subscription = await this.listener.subscribe(
          id,
          ['ready', 'failed', 'deleted'],
          waitSeconds * 1000,
        );
      const ticket = this.readyVoices.ticket(now);
      let voice = await this.voices.findById(id, userId);
      if (!voice) throw notFound();
      if (voice.status === 'reclaimed') {
        voice = (await this.requeue(voice)) ?? (await this.voices.findById(id, userId)) ?? voice;
      }
      if (
        voice.status !== 'ready' &&
        subscription &&
        ['pending', 'queued', 'allocating', 'reclaiming'].includes(voice.status)
      ) {
        // Read again whatever ended the wait: at its timeout too, as a notification sent while
        // the listener was reconnecting may have gone unheard.
        await subscription.wait;
        voice = (await this.voices.findById(id, userId)) ?? voice;
        // Reclaimed while this request waited (it was reclaiming when read): the app still wants
        // it, so it queues again, as if this activation had come a moment later.
        if (voice.status === 'reclaimed') {
          voice = (await this.requeue(voice)) ?? (await this.voices.findById(id, userId)) ?? voice;
        }
      }
      return await this.answerActivation(userId, voice, ticket);
    } finally {
      subscription?.cancel();
      release?.();
    }
  }

  /**
   * `ticket` was taken before `voice` was read: a ready voice answered without a write is cached
   * with it, unless it changed since (see ReadyVoiceCache); null when it must not be cached.
   */
  private async answerActivation(
    userId: string,
    voice: Voice,
    ticket: ReadTicket = null,
  ): Promise<ActivationResult> {
    const id = voice.id;
    switch (voice.status) {
      case 'ready': {
        const now = Date.now();
        if (this.leaseHasHalfLeft(voice, now)) {
          this.readyVoices.fill(voice, ticket, now);
          return this.answerWithoutWrite(voice, now);
        }
        const leased = await this.voices.transition({
          id,
          from: ['ready'],
          to: 'ready',
          userId,
          set: {
            leaseExpiresAt: secondsFromNow(this.config.ACTIVATION_LEASE_SECONDS),
            lastUsedAt: sql('now()'),
            ...usageSet('now()'),
          },
          event: { type: 'activated', reason: 'activation' },
        });
        if (leased) return { voice: leased, queue: null, ready: true };
        // Reclaimed or deleted in between: answer for the state it is in now.
        const current = await this.voices.findById(id, userId);
        if (!current || current.status === 'ready') throw notFound();
        return this.answerActivation(userId, current);
      }
      case 'failed':
        throw new ApiError(
          409,
          'voice_failed',
          `The voice failed: ${publicFailure(voice.failureCode).code}`,
        );
      case 'deleted':
        throw new ApiError(409, 'voice_deleted', 'The voice was deleted');
      case 'pending':
      case 'queued':
      case 'allocating':
      case 'reclaiming':
      case 'reclaimed':
        return {
          voice,
          queue: await this.voices.queuePosition(voice, this.queueInfoOptions),
          ready: false,
        };
    }
  }

  /**
   * A lease with more than half to run is not renewed: activating answers without a write. The
   * lease is only ever extended or cleared by a transition, so this holds for a cached read too.
   */
  private leaseHasHalfLeft(voice: Voice, now: number): boolean {
    const leaseMs = this.config.ACTIVATION_LEASE_SECONDS * 1000;
    return !!voice.leaseExpiresAt && voice.leaseExpiresAt.getTime() - now > leaseMs / 2;
  }

  /** The use is recorded in the next batch (LastUseRecorder), not written now. */
  private answerWithoutWrite(voice: Voice, now: number): ActivationResult {
    const at = new Date(now);
    this.lastUse.record(voice.id, at);
    return { voice: { ...voice, lastUsedAt: at }, queue: null, ready: true };
  }

  private async requeue(voice: Voice): Promise<Voice | null> {
    const queued = await this.voices.queueFairly(
      {
        id: voice.id,
        provider: voice.provider,
        userId: voice.userId,
        from: ['reclaimed'],
        set: { attempts: 0, remoteTries: 0, remoteVoiceId: null },
        event: { type: 'requeued', reason: 'activation' },
      },
      (waiting) => {
        if (waiting >= this.config.USER_MAX_PENDING) throw this.pendingLimit();
      },
    );
    return queued;
  }

  /**
   * An admin sends a dead letter back to the queue with a fresh attempt budget. Refused while a
   * remote voice of its last attempts may still be being cleaned up, so the clean-up never races
   * a new clone under the same key.
   */
  async retryFailed(id: string): Promise<Voice> {
    const voice = await this.voices.findById(id);
    if (!voice) throw notFound();
    if (voice.status !== 'failed') {
      throw new ApiError(
        409,
        'voice_not_failed',
        `Only failed voices can be retried; this one is ${voice.status}`,
      );
    }
    if (voice.remoteCleanupPending) {
      throw new ApiError(
        409,
        'cleanup_pending',
        'The last attempt is still being cleaned up; retry in a minute',
      );
    }
    const queued = await this.voices.queueFairly({
      id,
      provider: voice.provider,
      userId: voice.userId,
      from: ['failed'],
      set: { attempts: 0, failureCode: null, failureMessage: null },
      event: {
        type: 'retried',
        reason: 'admin_retry',
        metadata: { previousFailure: voice.failureCode },
      },
    });
    if (!queued) return this.retryFailed(id);
    return queued;
  }

  async delete(userId: string, id: string): Promise<Voice> {
    const voice = await this.voices.findById(id, userId);
    if (!voice) throw notFound();
    if (voice.status === 'deleted') return voice;
    const deleted = await this.voices.transition({
      id,
      userId,
      from: ['pending', 'queued', 'allocating', 'ready', 'reclaiming', 'reclaimed', 'failed'],
      to: 'deleted',
      // Fences an in-flight allocation: its late create is deleted by its own compensation.
      bumpToken: true,
      set: {
        // The slot stays counted until the remote voice is confirmed gone.
        remoteCleanupPending: sql(
          `v.remote_cleanup_pending OR v.status IN ('allocating','ready','reclaiming')`,
        ),
        allocationLeaseExpiresAt: null,
        leaseExpiresAt: null,
        // Whatever state it left, its sample goes; recorded here so a lost job cannot forget it.
        sampleRemovalDueAt: sql('now()'),
      },
      event: { type: 'deleted', reason: 'user_delete' },
    });
    if (!deleted) return this.delete(userId, id); // raced with another transition: read again
    // Its remote voice and sample are cleaned up by slots, told by the transition hooks.
    this.logger.log(
      { voiceId: id, userId, provider: voice.provider, from: voice.status },
      'voice deleted',
    );
    return deleted;
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

function notFound(): ApiError {
  return new ApiError(404, 'voice_not_found', 'No such voice');
}

function encodeCursor(v: Voice): string {
  return Buffer.from(JSON.stringify([v.createdAt.toISOString(), v.id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const [at, id] = Array.isArray(decoded) ? (decoded as unknown[]) : [];
    const createdAt = new Date(typeof at === 'string' ? at : NaN);
    const year = createdAt.getUTCFullYear();
    // Anything a cursor of ours cannot hold is refused here rather than by Postgres.
    if (Number.isNaN(year) || year < 1970 || year > 9999 || !isUuid(id)) {
      throw new Error('bad cursor');
    }
    return { createdAt, id };
  } catch {
    throw new ApiError(422, 'validation_failed', 'cursor is invalid');
  }
}
