import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { BreakerRepository } from '../providers/breaker.repository';
import { ProviderError } from '../providers/provider-error';
import type { Voice } from '../voice/voice';
import { secondsFromNow, sql, VoiceRepository } from '../voice/voice.repository';
import { backoffDelayMs, cappedRetryAfterMs } from '../queue/backoff';
import type { AllocationOutcome } from './allocation-outcome';
import { CapacityService } from './capacity.service';
import { CloneBudgetService } from './clone-budget.service';
import { DispatcherService } from './dispatcher.service';
import { RetryLaterError } from './retry-later.error';

/**
 * What an allocation attempt does when its provider says no, by the error's class (ARCHITECTURE
 * "Errors"): queue the voice again in its place, keep its claim for a later try, or fail it.
 */
@Injectable()
export class AllocationFailureService {
  private readonly logger = new Logger(AllocationFailureService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly breaker: BreakerRepository,
    private readonly dispatcher: DispatcherService,
    private readonly capacity: CapacityService,
    private readonly budget: CloneBudgetService,
  ) {}

  async onProviderError(
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
        const breaker = await this.breaker.recordProviderFailure(
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
  async deferForBreaker(voice: Voice, token: string, cause?: ProviderError): Promise<'stale'> {
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
}
