import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Coalescer } from '../common/coalescer';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { ProviderRegistry } from '../providers/provider-registry';
import { QueueConnections } from '../queue/queue-connections';
import { ReclaimService } from '../reclaim/reclaim.service';
import { DispatcherService } from '../slots/dispatcher.service';
import { SweeperService } from '../slots/sweeper.service';
import { VoiceEventsListener } from '../voice/voice-events.listener';
import { VoiceSweepsRepository } from '../voice/voice-sweeps.repository';

/** Sweep a little after a lease ends: the sweeper's queries compare strictly. */
const MARGIN_MS = 100;
/** Sweeps at most this often however many leases end, so a busy pool costs a bounded rate. */
const MIN_SPACING_MS = 500;
/** A sweep that failed (Postgres away) is tried again after this, doubled up to the cap. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;
/** Beyond this the scheduler's tick runs first anyway. */
const MAX_TIMER_MS = 5 * 60_000;
const RUN_TIMEOUT_MS = 60_000;

/**
 * Keeps every path event-driven across restarts, crashes and freezes (ARCHITECTURE invariant 10):
 *
 * - In every process, when the notification connection (Postgres) or Redis comes back, dispatch
 *   runs and the reclaim wake-up is re-armed from Postgres: whatever was announced, enqueued or
 *   retried while it was away may be lost, and the runs that would have armed the next step
 *   failed.
 * - In the scheduler role, the voices holding a slot on a job's behalf (allocating, reclaiming)
 *   are swept when their lease ends, not at the next tick: a job lost with Redis, or held by a
 *   worker killed or frozen mid-call, is resolved within its lease (plus a margin). The timer is
 *   armed from the notifications of claims and reclaims made by any replica, re-armed from
 *   Postgres after each sweep and after any reconnection; the tick stays as the backstop.
 */
@Injectable()
export class RecoveryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RecoveryService.name);
  private readonly sweeping = new Coalescer<'sweep'>(RUN_TIMEOUT_MS, 'lease-end sweep');
  private wakeUp: { at: number; timer: NodeJS.Timeout } | null = null;
  private lastSweep = 0;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly config: AppConfig,
    private readonly providers: ProviderRegistry,
    private readonly listener: VoiceEventsListener,
    private readonly queues: QueueConnections,
    private readonly voices: VoiceSweepsRepository,
    private readonly dispatcher: DispatcherService,
    private readonly reclaim: ReclaimService,
    private readonly sweeper: SweeperService,
  ) {}

  onApplicationBootstrap(): void {
    const sweeps = hasRole(this.config, 'scheduler');
    // The first connection too: a process (re)started while work was under way picks it up.
    this.listener.onConnected(() => this.rederive(sweeps));
    this.queues.onReconnected(() => this.rederive(sweeps));
    if (!sweeps) return;
    const leaseMs = this.config.ALLOCATION_LEASE_SECONDS * 1000;
    this.listener.observe((_id, status) => {
      // A claim or a reclaim somewhere: its lease ends one lease from now at the earliest.
      if (status === 'allocating' || status === 'reclaiming')
        this.arm(Date.now() + leaseMs + MARGIN_MS);
    });
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    if (this.wakeUp) clearTimeout(this.wakeUp.timer);
    this.wakeUp = null;
  }

  private rederive(sweeps: boolean): void {
    for (const provider of this.providers.enabled()) {
      this.dispatcher.nudge(provider);
      this.reclaim.reclaimInBackground(provider);
    }
    if (sweeps) this.arm(Date.now());
  }

  /** Sweeps at `at`, unless a sweep at or before it is armed already. */
  private arm(at: number): void {
    if (this.stopped) return;
    const when = Math.max(at, this.lastSweep + MIN_SPACING_MS);
    if (this.wakeUp && this.wakeUp.at <= when) return;
    if (this.wakeUp) clearTimeout(this.wakeUp.timer);
    const timer = setTimeout(
      () => {
        if (this.wakeUp?.timer === timer) this.wakeUp = null;
        void this.sweep();
      },
      Math.max(0, when - Date.now()),
    );
    // A pending sweep must not keep a stopping process alive; the next start sweeps anyway.
    timer.unref();
    this.wakeUp = { at: when, timer };
  }

  private async sweep(): Promise<void> {
    try {
      await this.sweeping.run('sweep', async () => {
        this.lastSweep = Date.now();
        const allocations = await this.sweeper.sweepExpiredAllocations();
        const reclaims = await this.reclaim.sweepStale();
        if (allocations || reclaims)
          this.logger.log({ allocations, reclaims }, 'swept work whose lease ended');
        const inMs = await this.voices.nextLeaseEndInMs(this.config.ALLOCATION_LEASE_SECONDS);
        if (inMs !== null && inMs <= MAX_TIMER_MS)
          this.arm(Date.now() + Math.max(0, inMs) + MARGIN_MS);
        return allocations + reclaims;
      });
      this.failures = 0;
    } catch (err) {
      this.failures++;
      const retryInMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.failures - 1));
      this.logger.warn({ err, retryInMs }, 'lease-end sweep failed; retrying');
      this.arm(Date.now() + retryInMs);
    }
  }
}
