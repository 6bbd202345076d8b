import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { Coalescer } from '../common/coalescer';
import { withTimeout } from '../common/timeout';
import type { ProviderName } from '../config/app-config';
import { QUEUE_ADD_TIMEOUT_MS } from '../queue/add-job';
import { JobName, QueueName, RETRY_BACKOFF, type JobPayloads } from '../queue/queues';
import type { Claimed } from './claim.repository';
import { DispatchStrategy, type DispatchRun } from './dispatch-strategy';
/**
 * A bound on one dispatch run. Each statement it waits for has its own timeout (DatabaseModule);
 * this one frees the coalescer even from a wait that has none.
 */
const RUN_TIMEOUT_MS = 60_000;
/** A nudge whose dispatch failed (Postgres away) is tried again after this, doubled up to the cap. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

/**
 * Fills free slots of a provider with queued voices. Called when a voice queues, when a slot frees,
 * and by the scheduler as a safety net. Claims happen in Postgres under the provider's row lock; a
 * job is enqueued per claim only after the commit, and a lost enqueue is found by the sweeper when
 * the allocation lease expires (Postgres is the truth, Bull executes).
 */
@Injectable()
export class DispatcherService {
  private readonly logger = new Logger(DispatcherService.name);
  private readonly queues: Record<ProviderName, Queue>;
  /** Coalesces bursts of dispatch requests for one provider within this process. */
  private readonly running = new Coalescer<ProviderName>(RUN_TIMEOUT_MS, 'dispatch');
  private readonly again = new Set<ProviderName>();
  /** Per provider, failed nudges in a row and the pending retry. */
  private readonly retries = new Map<ProviderName, { failures: number; timer?: NodeJS.Timeout }>();
  /** Called after each dispatch run, when the pool may be full: reclaim registers here. */
  private readonly saturatedListeners: ((provider: ProviderName) => void)[] = [];

  constructor(
    private readonly strategy: DispatchStrategy,
    @InjectQueue(QueueName.AllocationElevenLabs) elevenlabs: Queue,
    @InjectQueue(QueueName.AllocationCartesia) cartesia: Queue,
  ) {
    this.queues = { elevenlabs, cartesia };
  }

  /** Dispatches a provider now; concurrent calls in one process share a run (and one re-run). */
  dispatch(provider: ProviderName): Promise<number> {
    const current = this.running.current(provider);
    if (current) {
      this.again.add(provider);
      return current;
    }
    return this.running.run(provider, () => this.runLoop(provider));
  }

  /**
   * Registers a callback for a provider that ran out of free slots. An observer rather than an
   * import, so the slot pool does not depend on the reclaim policy built on top of it.
   */
  onSaturated(listener: (provider: ProviderName) => void): void {
    this.saturatedListeners.push(listener);
  }

  /**
   * Fire-and-forget variant for callers that must not fail because of dispatch. A failed run is
   * retried here with backoff: the event that asked for it (a freed slot, a new voice) will not
   * come again, and the scheduler's tick is only the backstop.
   */
  nudge(provider: ProviderName): void {
    this.dispatch(provider).then(
      () => {
        const retry = this.retries.get(provider);
        if (retry && !retry.timer) this.retries.delete(provider);
      },
      (err: unknown) => {
        const retry = this.retries.get(provider) ?? { failures: 0 };
        this.retries.set(provider, retry);
        retry.failures++;
        if (retry.timer) return;
        const retryInMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (retry.failures - 1));
        this.logger.warn({ err, provider, retryInMs }, 'dispatch failed; retrying');
        retry.timer = setTimeout(() => {
          retry.timer = undefined;
          this.nudge(provider);
        }, retryInMs);
        // A pending retry must not keep a stopping process alive; the scheduler covers for it.
        retry.timer.unref();
      },
    );
  }

  private runLoop(provider: ProviderName): Promise<number> {
    const run: DispatchRun = {
      enqueue: (p, claimed) => this.enqueue(p, claimed),
      startPass: () => this.again.delete(provider),
      rerunRequested: () => this.again.has(provider),
      saturated: () => {
        for (const listener of this.saturatedListeners) listener(provider);
      },
      nudge: () => this.nudge(provider),
    };
    return this.strategy.run(provider, run);
  }

  async enqueue(provider: ProviderName, claimed: Claimed[]): Promise<void> {
    const jobs = claimed.map((c) => ({
      name: JobName.Allocate,
      data: {
        voiceId: c.voiceId,
        fencingToken: c.fencingToken,
        trace: c.traceContext ?? undefined,
      } satisfies JobPayloads[JobName.Allocate],
      opts: {
        // One job per (voice, claim): a duplicate add is a no-op in Bull.
        jobId: `${c.voiceId}:${c.fencingToken}`,
        // Postgres counts attempts and decides failure; Bull only paces retries, which an open
        // breaker may defer many times without spending the voice's attempts.
        attempts: 1_000,
        backoff: { type: RETRY_BACKOFF },
      },
    }));
    // A lost add is found by the sweeper when the claim's lease ends (Postgres is the truth).
    await withTimeout(
      this.queues[provider].addBulk(jobs),
      QUEUE_ADD_TIMEOUT_MS,
      'allocation enqueue',
    );
    this.logger.debug({ provider, count: claimed.length }, 'allocations dispatched');
  }
}
