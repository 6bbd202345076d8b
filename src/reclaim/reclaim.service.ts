import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Queue } from 'bull';
import { Coalescer } from '../common/coalescer';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { ProviderRegistry } from '../providers/provider-registry';
import { addJobReplacingFinished, QUEUE_ADD_TIMEOUT_MS } from '../queue/add-job';
import { JobName, QueueName, type JobPayloads } from '../queue/queues';
import { withTimeout } from '../common/timeout';
import { DispatcherService } from '../slots/dispatcher.service';
import { VoiceRepository } from '../voice/voice.repository';
import type { ProtectionRules } from '../policy/reclaim-policy';
import { CloneBudgetService } from '../slots/clone-budget.service';
import { ReclaimRepository, type Victim } from './reclaim.repository';
import { chooseIdleVictims, chooseVictims } from './victim-choice';
import { addLogContext } from '../observability/log-context';

const RECLAIM_BATCH = 50;
/** Fire a little after the moment a voice becomes a victim: the victim query compares strictly. */
const EXPIRY_MARGIN_MS = 25;
/** Beyond this the scheduler's tick runs long before the timer would. */
const MAX_TIMER_MS = 5 * 60_000;
/** A reclaim run that failed (Postgres away) tries again after this, doubled up to the cap. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;
/** A bound on one run, beyond the timeouts of the statements it waits for. */
const RUN_TIMEOUT_MS = 60_000;

/**
 * Frees slots for waiting voices: when a provider has a backlog and no free slot, its
 * least-recently-used idle ready voices are reclaimed — that provider's only, never under an
 * activation lease, never younger than the minimum residency, and only as many as the backlog
 * needs. A reclaim is `reclaiming` → remote delete → `reclaimed`; the sample stays.
 */
@Injectable()
export class ReclaimService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ReclaimService.name);
  private readonly running = new Coalescer<ProviderName>(RUN_TIMEOUT_MS, 'reclaim');
  /** Per provider, the wake-up at the next moment a ready voice may become a victim. */
  private readonly wakeUps = new Map<ProviderName, { at: number; timer: NodeJS.Timeout }>();
  /** Per provider, reclaim runs that failed in a row (for the retry's backoff). */
  private readonly failures = new Map<ProviderName, number>();

  constructor(
    private readonly config: AppConfig,
    private readonly repo: ReclaimRepository,
    private readonly voices: VoiceRepository,
    private readonly providers: ProviderRegistry,
    private readonly dispatcher: DispatcherService,
    private readonly budget: CloneBudgetService,
    @InjectQueue(QueueName.Maintenance) private readonly maintenance: Queue,
  ) {}

  onModuleInit(): void {
    this.dispatcher.onSaturated((provider) => this.reclaimInBackground(provider));
    // A voice that becomes ready here is the next victim once its residency and idle time pass.
    // The wake-up is otherwise armed only from the voices ready when a reclaim run ends, so a
    // pool whose other slots are all busy (allocating, reclaiming) would wait for the tick.
    this.voices.onTransition(({ voice }) => {
      if (voice.status !== 'ready' || this.config.SCHEDULER_STRATEGY === 'legacy') return;
      const protectedMs =
        Math.max(this.config.RECLAIM_MIN_IDLE_SECONDS, this.config.RECLAIM_MIN_RESIDENCY_SECONDS) *
        1000;
      this.armWakeUp(voice.provider, Date.now() + protectedMs + EXPIRY_MARGIN_MS);
    });
  }

  /**
   * Runs reclaim for the provider without waiting. A run that fails (Postgres restarting, a
   * timeout) is retried here with backoff rather than left to the scheduler's tick: it may have
   * been the only thing that would have armed the next wake-up.
   */
  reclaimInBackground(provider: ProviderName): void {
    this.reclaimForBacklog(provider).then(
      () => this.failures.delete(provider),
      (err: unknown) => {
        const failed = (this.failures.get(provider) ?? 0) + 1;
        this.failures.set(provider, failed);
        const retryInMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failed - 1));
        this.logger.warn({ err, provider, retryInMs }, 'reclaim failed; retrying');
        this.armWakeUp(provider, Date.now() + retryInMs);
      },
    );
  }

  /** Reclaims what the provider's backlog needs; concurrent calls in a process share one run. */
  reclaimForBacklog(provider: ProviderName): Promise<number> {
    return this.running.run(provider, async () => {
      if (this.config.SCHEDULER_STRATEGY === 'legacy') return this.reclaimLegacy();
      if (!(await this.repo.needsReclaim(provider))) return 0;
      // Never free a slot for a clone that cannot go out now (invariant 9): a delete gives no
      // budget back, so the ready voice would be lost for nothing.
      const { allowance } = await this.budget.view(provider);
      if (allowance.first <= 0) return 0;
      // The reclaim policy (src/policy/reclaim-policy.ts) chooses; the locked statement applies.
      const { victims, wakeInMs } = await chooseVictims(this.repo, provider, {
        rules: this.rules,
        allowance,
        max: RECLAIM_BATCH,
      });
      if (victims.length) {
        await this.enqueue(victims);
        this.logger.log(
          { provider, count: victims.length, mode: 'backlog' },
          'reclaiming idle voices',
        );
      }
      this.wakeAtNextVictim(provider, wakeInMs);
      return victims.length;
    });
  }

  private get rules(): ProtectionRules {
    return {
      minIdleMs: this.config.RECLAIM_MIN_IDLE_SECONDS * 1000,
      minResidencyMs: this.config.RECLAIM_MIN_RESIDENCY_SECONDS * 1000,
    };
  }

  /**
   * The backlog still waits and every held voice is protected (leased, in use a moment ago, or
   * too new), or the budget's pacing holds re-clones back: run again the moment the policy says
   * the answer could change (its `wakeAt`), so a slot changes hands when its lease expires rather
   * than at the next scheduler tick.
   */
  private wakeAtNextVictim(provider: ProviderName, inMs: number | null): void {
    if (inMs === null || inMs <= 0 || inMs > MAX_TIMER_MS) return;
    this.armWakeUp(provider, Date.now() + inMs + EXPIRY_MARGIN_MS);
  }

  /** Runs reclaim for the provider at `at`, unless a wake-up at or before it is armed already. */
  private armWakeUp(provider: ProviderName, at: number): void {
    const current = this.wakeUps.get(provider);
    if (current && current.at <= at) return;
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(
      () => {
        if (this.wakeUps.get(provider)?.timer === timer) this.wakeUps.delete(provider);
        this.reclaimInBackground(provider);
      },
      Math.max(0, at - Date.now()),
    );
    // A pending wake-up must not keep a stopping process alive; the scheduler covers for it.
    timer.unref();
    this.wakeUps.set(provider, { at, timer });
  }

  onApplicationShutdown(): void {
    for (const { timer } of this.wakeUps.values()) clearTimeout(timer);
    this.wakeUps.clear();
  }

  /** The replaced design's reclaim, for comparison only (see ReclaimRepository.legacyVictims). */
  private async reclaimLegacy(): Promise<number> {
    const victims = await this.repo.legacyVictims(
      this.config.RECLAIM_MIN_IDLE_SECONDS,
      RECLAIM_BATCH,
    );
    if (victims.length) await this.enqueue(victims);
    return victims.length;
  }

  /** The optional cost saver: reclaims voices idle past RECLAIM_MAX_IDLE_SECONDS, backlog or not. */
  async reclaimIdle(provider: ProviderName): Promise<number> {
    if (this.config.RECLAIM_MAX_IDLE_SECONDS <= 0) return 0;
    const victims = await chooseIdleVictims(this.repo, provider, {
      rules: this.rules,
      maxIdleMs: this.config.RECLAIM_MAX_IDLE_SECONDS * 1000,
      max: RECLAIM_BATCH,
    });
    if (!victims.length) return 0;
    await this.enqueue(victims);
    this.logger.log({ provider, count: victims.length, mode: 'idle' }, 'reclaiming idle voices');
    return victims.length;
  }

  async enqueue(victims: Victim[]): Promise<void> {
    // Each victim has a fresh fencing token, so its job id is new. A lost add leaves the voice
    // reclaiming; sweepStale enqueues it again once its lease has passed.
    await withTimeout(
      this.maintenance.addBulk(
        victims.map((v) => ({
          name: JobName.Reclaim,
          data: {
            voiceId: v.voiceId,
            fencingToken: v.fencingToken,
          } satisfies JobPayloads[JobName.Reclaim],
          opts: this.jobOptions(v),
        })),
      ),
      QUEUE_ADD_TIMEOUT_MS,
      'reclaim enqueue',
    );
  }

  private jobOptions(v: Victim) {
    return {
      jobId: `reclaim:${v.voiceId}:${v.fencingToken}`,
      attempts: 8,
      backoff: { type: 'exponential', delay: 1_000 },
    };
  }

  /** The job: delete the remote voice (already gone counts as deleted), then mark it reclaimed. */
  async complete(voiceId: string, fencingToken: string): Promise<boolean> {
    const voice = await this.voices.findById(voiceId);
    if (voice) addLogContext({ userId: voice.userId, provider: voice.provider });
    if (!voice || voice.status !== 'reclaiming' || voice.fencingToken !== fencingToken)
      return false;
    if (voice.remoteVoiceId)
      await this.providers.get(voice.provider).deleteVoice(voice.remoteVoiceId);
    const done = await this.voices.transition({
      id: voiceId,
      from: ['reclaiming'],
      token: fencingToken,
      to: 'reclaimed',
      set: { remoteVoiceId: null, leaseExpiresAt: null, remoteTries: 0, attempts: 0 },
      event: {
        type: 'reclaimed',
        reason: 'idle_reclaim',
        metadata: { remoteVoiceId: voice.remoteVoiceId },
      },
    });
    if (done) {
      this.logger.log(
        { voiceId, userId: voice.userId, provider: voice.provider },
        'voice reclaimed',
      );
      this.dispatcher.nudge(voice.provider);
    }
    return done !== null;
  }

  /**
   * Re-enqueues reclaims whose job was lost (Redis restarted empty, an add that timed out) or
   * failed for good, once they have been reclaiming longer than a lease (the bound on one
   * provider call and its transition). A job still waiting, delayed or running keeps its place;
   * a failed one of the same id is replaced, since Bull would silently drop the add.
   */
  async sweepStale(): Promise<number> {
    const stale = await this.repo.staleReclaims(this.config.ALLOCATION_LEASE_SECONDS, 100);
    for (const v of stale) {
      const data: JobPayloads[JobName.Reclaim] = {
        voiceId: v.voiceId,
        fencingToken: v.fencingToken,
      };
      await addJobReplacingFinished(this.maintenance, JobName.Reclaim, data, this.jobOptions(v));
    }
    return stale.length;
  }
}
