import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { ProviderRegistry } from '../providers/provider-registry';
import { addJobReplacingFinished } from '../queue/add-job';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { SampleStorage } from '../voice/sample-storage.port';
import type { Voice } from '../voice/voice';
import { VoiceCleanupRepository } from '../voice/voice-cleanup.repository';
import { VoiceRepository } from '../voice/voice.repository';
import { CloneBudgetService } from './clone-budget.service';
import { DispatcherService } from './dispatcher.service';
import { SlotsRepository } from './slots.repository';
import { addLogContext } from '../observability/log-context';

/** The clean-up sweep's period in scheduler ticks, and the first back-off of a failed removal. */
export const SWEEP_CLEANUPS_TICKS = 3;
/** A removal failing for good is tried again at least this often (seconds). */
const MAX_SAMPLE_REMOVAL_BACKOFF_SECONDS = 3600;

/** Keeps the slot pool's numbers true: account limits, foreign voices, remote clean-ups. */
@Injectable()
export class CapacityService {
  private readonly logger = new Logger(CapacityService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly slots: SlotsRepository,
    private readonly voices: VoiceRepository,
    private readonly cleanups: VoiceCleanupRepository,
    private readonly providers: ProviderRegistry,
    private readonly storage: SampleStorage,
    private readonly dispatcher: DispatcherService,
    private readonly budget: CloneBudgetService,
    @InjectQueue(QueueName.Maintenance) private readonly maintenance: Queue,
  ) {}

  /** Writes the configured limits; called at start by every role that dispatches. */
  async applyConfiguredLimits(): Promise<void> {
    for (const name of this.providers.enabled()) {
      await this.slots.setLimits(name, {
        configuredLimit: this.config.providers[name].slotLimit ?? null,
      });
    }
    await this.budget.applyConfigured();
  }

  /**
   * Reads the account's own voice limit and clone budget, where the provider exposes them, then
   * dispatches: a larger limit or a budget that reset lets waiting voices go.
   */
  async refreshAccount(provider: ProviderName): Promise<void> {
    await this.budget.refreshAccount(provider);
    this.dispatcher.nudge(provider);
  }

  /**
   * Asks a worker to reconcile the provider now: recount foreign voices, delete orphans. Used by
   * the admin route and after a provider says its library is full.
   */
  async requestReconcile(provider: ProviderName): Promise<void> {
    const data: JobPayloads[JobName.Reconcile] = { provider };
    await addJobReplacingFinished(this.maintenance, JobName.Reconcile, data, {
      // One pending run per provider per 10 s window, however many ask.
      jobId: `reconcile:${provider}:${Math.floor(Date.now() / 10_000)}`,
      attempts: 3,
      backoff: { type: 'exponential', delay: 5_000 },
    });
  }

  async scheduleCleanup(voiceId: string): Promise<void> {
    const data: JobPayloads[JobName.RemoteCleanup] = { voiceId };
    // One job per voice at a time; a failed one is replaced, or the sweep's re-enqueue would be
    // dropped and the slot stay counted for good.
    await addJobReplacingFinished(this.maintenance, JobName.RemoteCleanup, data, {
      jobId: `cleanup:${voiceId}`,
      attempts: 8,
      backoff: { type: 'exponential', delay: 2_000 },
    }).catch((err: unknown) =>
      // The scheduler's sweep finds voices with a pending clean-up again.
      this.logger.warn({ err, voiceId }, 'could not enqueue remote clean-up'),
    );
  }

  /**
   * Deletes whatever remote voice a voice that no longer holds a slot may still have, then frees
   * the slot it was counted in. A deleted voice also loses its sample here.
   */
  async cleanup(voiceId: string): Promise<void> {
    const voice = await this.voices.findById(voiceId);
    if (voice) addLogContext({ userId: voice.userId, provider: voice.provider });
    if (!voice) return;
    // First, as it needs no provider: a provider outage must not keep the sample.
    if (voice.status === 'deleted' && voice.sampleRemovalPending) await this.removeSample(voice);
    // Only for voices that gave up their slot: a voice queued or allocating again (an admin
    // retry) may be creating a remote voice under the same key right now.
    if (voice.remoteCleanupPending && (voice.status === 'failed' || voice.status === 'deleted')) {
      const adapter = this.providers.get(voice.provider);
      const remoteId =
        voice.remoteVoiceId ?? (await adapter.findByIdempotencyKey(voice.id))?.remoteVoiceId;
      if (remoteId) await adapter.deleteVoice(remoteId);
      if (await this.cleanups.clearRemote(voice.id, voice.remoteVoiceId)) {
        this.logger.log(
          { voiceId, provider: voice.provider, remoteVoiceId: remoteId ?? null },
          'remote voice cleaned up',
        );
        this.dispatcher.nudge(voice.provider);
      }
    }
  }

  /**
   * A failed removal (object storage refusing, a disk error) stays pending in Postgres with a
   * back-off, and the clean-up sweep schedules it again when that has passed: it is never
   * swallowed, and never retried faster than the back-off allows.
   */
  private async removeSample(voice: Voice): Promise<void> {
    const ctx = { voiceId: voice.id, key: voice.sample.key };
    try {
      await this.storage.remove(voice.sample.key);
    } catch (err) {
      const failed = await this.cleanups.sampleRemovalFailed(
        voice.id,
        this.config.SCHEDULER_TICK_SECONDS * SWEEP_CLEANUPS_TICKS,
        MAX_SAMPLE_REMOVAL_BACKOFF_SECONDS,
      );
      this.logger.warn(
        { err, ...ctx, ...failed },
        'sample removal failed; retried after a back-off',
      );
      return;
    }
    await this.cleanups.sampleRemoved(voice.id);
    this.logger.log(ctx, 'sample removed');
  }
}
