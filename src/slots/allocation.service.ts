import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { BreakerRepository } from '../providers/breaker.repository';
import { ProviderError } from '../providers/provider-error';
import { ProviderRegistry } from '../providers/provider-registry';
import { SampleStorage } from '../voice/sample-storage.port';
import type { Voice } from '../voice/voice';
import { sql, VoiceRepository } from '../voice/voice.repository';
import { AllocationFailureService } from './allocation-failure.service';
import type { AllocationOutcome } from './allocation-outcome';

export type { AllocationOutcome } from './allocation-outcome';
import { AllocationLeaseRepository } from './allocation-lease.repository';
import { CloneBudgetService } from './clone-budget.service';
import { DispatcherService } from './dispatcher.service';
import { HeldLease } from './held-lease';
import { addLogContext } from '../observability/log-context';

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
    private readonly leases: AllocationLeaseRepository,
    private readonly breaker: BreakerRepository,
    private readonly providers: ProviderRegistry,
    private readonly storage: SampleStorage,
    private readonly dispatcher: DispatcherService,
    private readonly budget: CloneBudgetService,
    private readonly failures: AllocationFailureService,
  ) {}

  async allocate(voiceId: string, fencingToken: string): Promise<AllocationOutcome> {
    const lease = this.config.ALLOCATION_LEASE_SECONDS;
    const held = new HeldLease(lease);
    const begun = await this.leases.beginAttempt(voiceId, fencingToken, lease);
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
      !(await this.breaker.admitCall(
        voice.provider,
        voiceId,
        this.config.BREAKER_COOLDOWN_SECONDS,
        lease,
      ))
    ) {
      return this.failures.deferForBreaker(voice, fencingToken);
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
      if (breakerDirty && (await this.breaker.recordProviderSuccess(voice.provider))) {
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
      return this.failures.onProviderError(voice, fencingToken, voice.attempts, err);
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
    const renewed = await this.leases.renewLease(
      voiceId,
      token,
      this.config.ALLOCATION_LEASE_SECONDS,
    );
    if (renewed) held.renewed(at);
    return renewed;
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
