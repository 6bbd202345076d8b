import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { ProviderError } from '../providers/provider-error';
import { ProviderRegistry } from '../providers/provider-registry';
import { SampleStorage } from '../voice/sample-storage.port';
import type { Voice } from '../voice/voice';
import { secondsFromNow, sql, VoiceRepository } from '../voice/voice.repository';
import { backoffDelayMs, cappedRetryAfterMs } from './backoff';
import { CapacityService } from './capacity.service';
import { CloneBudgetService } from './clone-budget.service';
import { DispatcherService } from './dispatcher.service';
import { SlotsRepository } from './slots.repository';
import { addLogContext } from '../observability/log-context';

export type AllocationOutcome = 'ready' | 'adopted' | 'stale' | 'requeued' | 'failed';

/**
 * The allocation lease as this process last had it granted, on the monotonic clock (which keeps
 * running while the process is frozen). Taken before the statement that grants it, so it never
 * ends later here than in Postgres.
 */
class HeldLease {
  private validUntil: number;

  constructor(private readonly seconds: number) {
    this.validUntil = performance.now() + seconds * 1000;
  }

  /** Call with the time taken just before the renewal that succeeded. */
  renewed(requestedAt: number): void {
    this.validUntil = requestedAt + this.seconds * 1000;
  }

  /** Safely ours for a while yet: a tenth of the lease (at most 5 s) kept as a margin. */
  get comfortable(): boolean {
    return performance.now() < this.validUntil - Math.min(5_000, this.seconds * 100);
  }
}

/** Thrown to ask Bull for another try later; the attempt is already recorded in Postgres. */
export class RetryLaterError extends Error {
  constructor(
    readonly providerError: ProviderError,
    /** The earliest retry, read by the backoff strategy. */
    readonly retryAfterMs: number | null = providerError.retryAfterMs,
    /** Retry after exactly this long (see backoff.ts): a breaker deferral, or a delay chosen here. */
    readonly fixedDelayMs?: number,
  ) {
    super(`retryable provider error: ${providerError.code}`);
  }
}

/**
 * One allocation attempt for one claimed voice: clone it at most once (ARCHITECTURE invariant 2).
 * Every step checks the fencing token; a create whose voice was taken over meanwhile is undone.
 */
@Injectable()
export class AllocationService {
  private readonly logger = new Logger(AllocationService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly slots: SlotsRepository,
    private readonly providers: ProviderRegistry,
    private readonly storage: SampleStorage,
    private readonly dispatcher: DispatcherService,
    private readonly capacity: CapacityService,
    private readonly budget: CloneBudgetService,
  ) {}

  async allocate(voiceId: string, fencingToken: string): Promise<AllocationOutcome> {
    const lease = this.config.ALLOCATION_LEASE_SECONDS;
    const held = new HeldLease(lease);
    const begun = await this.slots.beginAttempt(voiceId, fencingToken, lease);
    if (!begun) return 'stale';
    const { voice } = begun;
    // Every line of this job now names the voice's user and provider.
    addLogContext({ userId: voice.userId, provider: voice.provider });
    const ctx = {
      voiceId,
      userId: voice.userId,
      provider: voice.provider,
      attempt: voice.attempts,
    };
    if (
      begun.breaker !== 'closed' &&
      !(await this.slots.admitCall(
        voice.provider,
        voiceId,
        this.config.BREAKER_COOLDOWN_SECONDS,
        lease,
      ))
    ) {
      return this.deferForBreaker(voice, fencingToken);
    }
    // Keep the lease alive while a slow provider call runs, so the sweeper leaves us alone.
    const renew = setInterval(
      () => {
        this.renew(held, voiceId, fencingToken).catch(() => undefined);
      },
      Math.max(1_000, (lease * 1000) / 3),
    );
    let createSent = false;
    try {
      const created = await this.createOnce(
        voice,
        voice.remoteTries,
        () => this.stillOurs(held, voiceId, fencingToken),
        () => (createSent = true),
      );
      if (!created) {
        this.logger.warn(ctx, 'allocation lease lost before the create; the sweeper has it');
        return 'stale';
      }
      const { remoteVoiceId, adopted } = created;
      const breakerDirty = begun.breaker !== 'closed' || begun.breakerFailures > 0;
      if (breakerDirty && (await this.slots.recordProviderSuccess(voice.provider))) {
        this.logger.log({ provider: voice.provider }, 'provider breaker closed');
        this.dispatcher.nudge(voice.provider);
      }
      const done = await this.voices.transition({
        id: voiceId,
        from: ['allocating'],
        token: fencingToken,
        to: 'ready',
        set: {
          remoteVoiceId,
          readyAt: sql('now()'),
          lastUsedAt: sql('now()'),
          allocationLeaseExpiresAt: null,
          failureCode: null,
          failureMessage: null,
        },
        event: {
          type: adopted ? 'adopted' : 'ready',
          reason: adopted ? 'remote_adopted' : 'remote_created',
          metadata: { remoteVoiceId, attempt: voice.attempts },
        },
      });
      if (!done) {
        await this.compensate(voice, remoteVoiceId);
        return 'stale';
      }
      this.logger.log({ ...ctx, remoteVoiceId, adopted }, 'voice ready');
      return adopted ? 'adopted' : 'ready';
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      return this.onProviderError(voice, fencingToken, voice.attempts, err);
    } finally {
      clearInterval(renew);
      // The provider's counter moved (or refused to): read it again soon.
      if (createSent) this.budget.afterCloneOutcome(voice.provider);
    }
  }

  /**
   * Creates the remote voice unless an earlier attempt already did: from the second attempt on, an
   * earlier create may have reached the provider with its answer lost, so look the key up first.
   */
  private async createOnce(
    voice: Voice,
    attempt: number,
    stillOurs: () => Promise<boolean>,
    onCreateSent: () => void,
  ): Promise<{ remoteVoiceId: string; adopted: boolean } | null> {
    const provider = this.providers.get(voice.provider);
    if (attempt > 1) {
      const found = await provider.findByIdempotencyKey(voice.id);
      if (found) return { remoteVoiceId: found.remoteVoiceId, adopted: true };
    }
    // A process frozen (or starved) past its lease must not create: the sweeper may have queued
    // the voice again, and a late create would take a slot beyond the limit until undone.
    if (!(await stillOurs())) return null;
    onCreateSent();
    const created = await provider.createVoice({
      name: voice.name,
      idempotencyKey: voice.id,
      language: voice.language ?? undefined,
      sample: {
        open: () => this.storage.open(voice.sample.key),
        filename: `${voice.id}.${voice.sample.format ?? 'bin'}`,
        contentType: voice.sample.contentType,
        sizeBytes: voice.sample.sizeBytes,
      },
    });
    return { remoteVoiceId: created.remoteVoiceId, adopted: false };
  }

  /**
   * Whether the lease still covers a provider call: at once when it has time left here, else by
   * renewing it, which succeeds only while Postgres still has the voice allocating under our token.
   */
  private async stillOurs(held: HeldLease, voiceId: string, token: string): Promise<boolean> {
    return held.comfortable || this.renew(held, voiceId, token);
  }

  /** Renews the lease while the voice is still allocating under `token`; false once it is not. */
  private async renew(held: HeldLease, voiceId: string, token: string): Promise<boolean> {
    const at = performance.now();
    const renewed = await this.slots.renewLease(
      voiceId,
      token,
      this.config.ALLOCATION_LEASE_SECONDS,
    );
    if (renewed) held.renewed(at);
    return renewed;
  }

  private async onProviderError(
    voice: Voice,
    token: string,
    attempt: number,
    err: ProviderError,
  ): Promise<AllocationOutcome> {
    const ctx = {
      voiceId: voice.id,
      userId: voice.userId,
      provider: voice.provider,
      attempt,
      code: err.code,
    };
    const errorInfo = { code: err.code, message: err.message, httpStatus: err.httpStatus, attempt };
    switch (err.errorClass) {
      case 'capacity': {
        // The account is fuller than we counted (voices made by hand, a changed plan): recount and
        // queue again in the same place, without spending the attempt.
        const requeued = await this.requeueInPlace(voice, token, 'provider_capacity', errorInfo);
        this.logger.warn(ctx, 'provider reports its voice limit reached; recounting');
        await Promise.all([
          this.capacity.refreshAccount(voice.provider),
          this.capacity.requestReconcile(voice.provider),
        ]).catch((e: unknown) =>
          this.logger.warn({ err: e, provider: voice.provider }, 'recount failed'),
        );
        return requeued ? 'requeued' : 'stale';
      }
      case 'budget': {
        // The account's clone budget is spent until its reset (someone else spent it, or our
        // count was stale). Not this voice's fault: it queues again in its place without
        // spending an attempt, and nothing is reclaimed for it - deleting a voice gives no
        // budget back. The claim takes no clone until the reset.
        const requeued = await this.requeueInPlace(voice, token, 'provider_budget', errorInfo);
        await this.budget
          .markExhausted(voice.provider)
          .catch((e: unknown) =>
            this.logger.warn(
              { err: e, provider: voice.provider },
              'could not mark the budget spent',
            ),
          );
        this.logger.warn(ctx, 'provider reports its clone budget spent; voice queued again');
        // Arms the wake-up at the reset.
        this.dispatcher.nudge(voice.provider);
        return requeued ? 'requeued' : 'stale';
      }
      case 'retryable': {
        const breaker = await this.slots.recordProviderFailure(
          voice.provider,
          this.config.BREAKER_FAILURE_THRESHOLD,
        );
        if (breaker === 'open') {
          this.logger.warn(ctx, 'provider breaker opened');
          return this.deferForBreaker(voice, token, err);
        }
        if (attempt >= this.config.MAX_ATTEMPTS) {
          const failed = await this.failVoice(voice, token, 'attempts_exhausted', err, attempt);
          return failed ? 'failed' : 'stale';
        }
        // The delay is chosen here, so the lease covers exactly this wait: a job lost meanwhile
        // (worker killed, Redis restarted) is found by the sweeper soon after, not a minute later.
        const delayMs = backoffDelayMs(attempt, err);
        const kept = await this.keepForRetry(
          voice,
          token,
          Math.ceil(delayMs / 1000),
          errorInfo,
          false,
        );
        this.logger.warn({ ...ctx, retryInMs: delayMs }, 'allocation attempt failed; will retry');
        if (!kept) return 'stale';
        throw new RetryLaterError(err, cappedRetryAfterMs(err.retryAfterMs), delayMs);
      }
      case 'fatal':
      case 'not_found': {
        const failed = await this.failVoice(voice, token, 'provider_fatal', err, attempt);
        this.logger.error(ctx, 'allocation failed permanently');
        return failed ? 'failed' : 'stale';
      }
    }
  }

  /**
   * The provider refused for the account, not for this voice: queue it again in its place (its
   * fair tag is kept) and give back the attempt. The create was refused, so no remote voice exists
   * to keep a slot for.
   */
  private requeueInPlace(
    voice: Voice,
    token: string,
    reason: 'provider_capacity' | 'provider_budget',
    metadata: Record<string, unknown>,
  ): Promise<Voice | null> {
    return this.voices.transition({
      id: voice.id,
      from: ['allocating'],
      token,
      to: 'queued',
      bumpToken: true,
      set: { attempts: sql('GREATEST(v.attempts - 1, 0)'), allocationLeaseExpiresAt: null },
      event: { type: 'requeued', reason, metadata },
    });
  }

  /**
   * The provider's breaker is open: an outage is not this voice's fault, so the attempt is given
   * back and the job waits out the cool-down. The voice keeps its claim and slot: a lost create
   * may have made its remote voice, and the next try looks the key up first.
   */
  private async deferForBreaker(
    voice: Voice,
    token: string,
    cause?: ProviderError,
  ): Promise<'stale'> {
    const cooldown = this.config.BREAKER_COOLDOWN_SECONDS;
    // Jittered so that the voices deferred together do not all knock at once when it ends. The
    // provider's Retry-After is capped (backoff.ts), and the lease covers exactly this wait plus a
    // margin: never longer (a year's Retry-After), never shorter (the sweeper would take over).
    const delay = Math.round(
      Math.max(cooldown * 1000, cappedRetryAfterMs(cause?.retryAfterMs)) *
        (1 + Math.random() * 0.2),
    );
    const kept = await this.keepForRetry(
      voice,
      token,
      Math.ceil(delay / 1000) + 60,
      { code: cause?.code ?? 'breaker_open', breaker: 'open' },
      true,
    );
    if (!kept) return 'stale';
    const error =
      cause ??
      new ProviderError(
        voice.provider,
        'retryable',
        'breaker_open',
        'The provider circuit breaker is open',
      );
    throw new RetryLaterError(error, delay, delay);
  }

  /**
   * Keeps the claim and the slot across a wait for the next try: the lease covers the wait, so
   * the sweeper does not take the voice over meanwhile. False when the voice moved on.
   */
  private async keepForRetry(
    voice: Voice,
    token: string,
    waitSeconds: number,
    metadata: Record<string, unknown>,
    giveBackAttempt: boolean,
  ): Promise<boolean> {
    const kept = await this.voices.transition({
      id: voice.id,
      from: ['allocating'],
      token,
      to: 'allocating',
      set: {
        ...(giveBackAttempt ? { attempts: sql('GREATEST(v.attempts - 1, 0)') } : {}),
        allocationLeaseExpiresAt: secondsFromNow(
          this.config.ALLOCATION_LEASE_SECONDS + waitSeconds,
        ),
      },
      event: { type: 'attempt_failed', reason: 'provider_retryable', metadata },
    });
    return kept !== null;
  }

  private async failVoice(
    voice: Voice,
    token: string,
    reason: 'attempts_exhausted' | 'provider_fatal',
    err: ProviderError,
    attempt: number,
  ): Promise<boolean> {
    const failed = await this.voices.transition({
      id: voice.id,
      from: ['allocating'],
      token,
      to: 'failed',
      bumpToken: true,
      set: {
        failureCode: reason === 'attempts_exhausted' ? 'attempts_exhausted' : err.code,
        failureMessage: err.message,
        allocationLeaseExpiresAt: null,
        // An earlier create may have succeeded unseen: the slot stays counted until cleanup
        // has looked the key up and deleted what it finds.
        remoteCleanupPending: true,
      },
      event: {
        type: 'failed',
        reason,
        metadata: { code: err.code, message: err.message, httpStatus: err.httpStatus, attempt },
      },
    });
    if (failed) await this.capacity.scheduleCleanup(voice.id);
    return failed !== null;
  }

  /** Our create finished after the voice moved on: delete the voice we made unless it was adopted. */
  private async compensate(voice: Voice, remoteVoiceId: string): Promise<void> {
    const now = await this.voices.findById(voice.id);
    if (now?.remoteVoiceId === remoteVoiceId) return;
    this.logger.warn(
      { voiceId: voice.id, provider: voice.provider, remoteVoiceId },
      'stale create; deleting it',
    );
    try {
      await this.providers.get(voice.provider).deleteVoice(remoteVoiceId);
    } catch (err) {
      // Reconciliation deletes orphans carrying our key; nothing is lost by giving up here.
      this.logger.warn(
        { err, voiceId: voice.id, remoteVoiceId },
        'could not delete stale remote voice',
      );
    }
    this.dispatcher.nudge(voice.provider);
  }
}
