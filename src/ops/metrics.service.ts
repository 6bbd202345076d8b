import { budgetState } from '../providers/provider-accounts.repository';
import { CloneBudgetService } from '../slots/clone-budget.service';
import { getQueueToken } from '@nestjs/bull';
import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Queue } from 'bull';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { ProviderName } from '../config/app-config';
import type { ProviderCall } from '../providers/instrumented-provider';
import { WebhookDeliveryService } from '../webhooks/webhook-delivery.service';
import { WebhooksRepository } from '../webhooks/webhooks.repository';
import { ProviderRegistry } from '../providers/provider-registry';
import { ReconcileService } from '../reclaim/reconcile.service';
import { QueueName } from '../queue/queues';
import { SlotsRepository, type BreakerState } from '../slots/slots.repository';
import { withTimeout } from '../common/timeout';
import { AppConfig } from '../config/config.module';
import { SampleStorage } from '../voice/sample-storage.port';
import { VoiceEventsListener } from '../voice/voice-events.listener';
import { VoiceRepository, type TransitionRecord } from '../voice/voice.repository';
import {
  InstrumentedSampleStorage,
  type StorageOperation,
} from '../voice/instrumented-sample-storage';
import { COUNTED_STATUSES, MetricsRepository } from './metrics.repository';
import { defineMetrics, type ServiceMetrics } from './metric-definitions';

const MISNAMED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];
const BULL_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;
/** A refresh still running after this long is given up on; its series keep their last values. */
const REFRESH_TIMEOUT_MS = 10_000;

/** Event reasons that end one allocation attempt (the sweeper's `lease_expired` is not one). */
const ATTEMPT_RESULTS = new Set([
  'remote_created',
  'remote_adopted',
  'provider_retryable',
  'provider_capacity',
  'provider_fatal',
  'attempts_exhausted',
]);

export interface ReconciliationFindings {
  /** Remote voices carrying our key that no voice owns any more, deleted. */
  orphansDeleted: number;
  /** Ready voices whose remote voice was gone. */
  missingReady: number;
}

/**
 * Prometheus metrics, in two kinds:
 * - gauges of shared state (slots, queues, breakers, stuck work) read from Postgres and Redis at
 *   scrape time, so every replica reports the same truth and nothing is summed across replicas;
 * - counters and histograms of what this replica did (transitions, provider calls, HTTP), to be
 *   summed across replicas with `sum by (...)(rate(...))`.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  private readonly logger = new Logger(MetricsService.name);
  readonly registry = new Registry();

  private readonly gauges: ServiceMetrics['gauges'];
  private readonly counters: ServiceMetrics['counters'];
  private readonly histograms: ServiceMetrics['histograms'];

  /** The refresh in progress, which every scrape arriving meanwhile waits for. */
  private refreshing: Promise<void> | null = null;
  private refreshStartedAt = -Infinity;

  constructor(
    private readonly slots: SlotsRepository,
    private readonly repo: MetricsRepository,
    private readonly providers: ProviderRegistry,
    private readonly voices: VoiceRepository,
    private readonly storage: SampleStorage,
    private readonly moduleRef: ModuleRef,
    private readonly budget: CloneBudgetService,
    private readonly config: AppConfig,
    private readonly webhooks: WebhooksRepository,
    private readonly deliveries: WebhookDeliveryService,
    listener: VoiceEventsListener,
    reconcile: ReconcileService,
  ) {
    reconcile.onReconciled((provider, report) => this.recordReconciliation(provider, report));
    ({
      gauges: this.gauges,
      counters: this.counters,
      histograms: this.histograms,
    } = defineMetrics(this.registry));
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'voice_slots_activation_waiters',
      help: 'Activations of this replica waiting for ready now (waitSeconds; capped per replica and per user)',
      registers: [this.registry],
      collect() {
        this.set(listener.waiterCount);
      },
    });
    // Gauges that prom-client names like counters; promtool rejects them, and the unsuffixed
    // nodejs_active_* gauges it also exports say the same per type.
    for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
  }

  onModuleInit(): void {
    this.voices.onTransition((t) => this.onTransition(t));
    this.deliveries.setObserver({
      onAttempt: (outcome, seconds) => {
        this.counters.webhookAttempts.inc({ outcome });
        this.histograms.webhook.observe(seconds);
      },
    });
    this.providers.setObserver({ onCall: (call) => this.recordProviderCall(call) });
    this.budget.onRefused((provider, reason, voices) =>
      this.counters.budgetRefusals.inc({ provider, reason }, voices),
    );
    if (this.storage instanceof InstrumentedSampleStorage) {
      this.storage.onFailure((operation) => this.recordStorageFailure(operation));
    }
  }

  /**
   * The gauges of shared state cost several queries and Bull counts, and /metrics answers anyone:
   * they are read at most once per METRICS_REFRESH_SECONDS, and scrapes arriving meanwhile (or
   * during the read) are served what it found. Counters and process gauges are always current.
   */
  async render(): Promise<string> {
    const now = performance.now();
    const ageMs = now - this.refreshStartedAt;
    if (!this.refreshing && ageMs >= this.config.METRICS_REFRESH_SECONDS * 1000) {
      this.refreshStartedAt = now;
      // Bounded: a source that never answers must not hold every later scrape behind it.
      this.refreshing = withTimeout(this.refreshShared(), REFRESH_TIMEOUT_MS, 'metrics refresh')
        .catch((err: unknown) => this.logger.warn({ err }, 'metrics refresh did not finish'))
        .finally(() => (this.refreshing = null));
    }
    if (this.refreshing) await this.refreshing;
    return this.registry.metrics();
  }

  private async refreshShared(): Promise<void> {
    // One failing source (say Redis) must not cost the scrape every other series.
    const results = await Promise.allSettled([
      this.refreshSlots(),
      this.refreshVoices(),
      this.refreshJobs(),
      this.refreshWebhooks(),
    ]);
    for (const r of results) {
      if (r.status === 'rejected') {
        const err: unknown = r.reason;
        this.logger.warn({ err }, 'a metrics source failed; its series keep their last values');
      }
    }
    this.gauges.refreshedAt.set(Date.now() / 1000);
  }

  /** Reconciliation's findings for one provider; call once per finished run. */
  private recordReconciliation(provider: ProviderName, findings: ReconciliationFindings): void {
    this.counters.reconciliationRuns.inc({ provider });
    this.counters.reconciliationFindings.inc(
      { provider, finding: 'orphan_deleted' },
      findings.orphansDeleted,
    );
    this.counters.reconciliationFindings.inc(
      { provider, finding: 'ready_missing' },
      findings.missingReady,
    );
  }

  recordStorageFailure(operation: StorageOperation): void {
    this.counters.storageFailures.inc({ operation });
  }

  recordProviderCall(call: ProviderCall): void {
    const { provider, operation, outcome } = call;
    this.counters.providerRequests.inc({ provider, operation, outcome });
    this.histograms.provider.observe({ provider, operation }, call.durationSeconds);
  }

  recordHttpRequest(method: string, route: string, status: number, durationSeconds: number): void {
    const labels = { method, route, status: String(status) };
    this.histograms.http.observe(labels, durationSeconds);
  }

  /** Counts what a committed transition means; listeners of the repository must not throw. */
  private onTransition({ voice, from, event }: TransitionRecord): void {
    try {
      const provider = voice.provider;
      if (from === 'allocating' && ATTEMPT_RESULTS.has(event.reason)) {
        this.counters.attempts.inc({ provider, result: event.reason });
      }
      if (event.type === 'attempt_failed') {
        this.counters.retries.inc({ provider, reason: event.reason });
      }
      if (voice.status === 'ready' && from === 'allocating') {
        const readyAt = voice.readyAt?.getTime();
        if (readyAt !== undefined && voice.claimedAt) {
          this.histograms.allocation.observe(
            { provider },
            Math.max(0, (readyAt - voice.claimedAt.getTime()) / 1000),
          );
        }
        if (readyAt !== undefined) {
          this.histograms.timeToReady.observe(
            { provider },
            Math.max(0, (readyAt - voice.createdAt.getTime()) / 1000),
          );
        }
      }
      if (voice.status === 'failed' && from !== 'failed') {
        this.counters.failures.inc({ provider, reason: event.reason });
      }
      if (voice.status === 'reclaimed' && from !== 'reclaimed') {
        this.counters.reclaims.inc({ provider, reason: event.reason });
      }
      // The sweeper first takes the voice over (allocating → allocating), then resolves it.
      if (event.reason === 'lease_expired' && voice.status !== 'allocating') {
        this.counters.sweeper.inc({
          provider,
          outcome: voice.status === 'ready' ? 'adopted' : 'requeued',
        });
      }
    } catch (err) {
      this.logger.warn({ err, voiceId: voice.id }, 'could not count a transition');
    }
  }

  private async refreshSlots(): Promise<void> {
    for (const provider of this.providers.enabled()) {
      const c = await this.slots.capacity(provider);
      this.gauges.limit.set({ provider }, c.limit);
      this.gauges.held.set({ provider }, c.held);
      this.gauges.free.set({ provider }, c.free);
      this.gauges.foreign.set({ provider }, c.foreign);
      this.gauges.queued.set({ provider }, c.queued);
      this.gauges.oldest.set({ provider }, c.oldestQueuedSeconds ?? 0);
      for (const state of BREAKER_STATES) {
        this.gauges.breaker.set({ provider, state }, c.breaker === state ? 1 : 0);
      }
      const { account, allowance } = await this.budget.view(provider);
      this.gauges.budgetUsed.set({ provider }, budgetState(account).spent);
      if (allowance.limit === null) this.gauges.budgetLimit.remove({ provider });
      else this.gauges.budgetLimit.set({ provider }, allowance.limit);
      if (allowance.resetsAt === null) this.gauges.budgetResetSeconds.remove({ provider });
      else
        this.gauges.budgetResetSeconds.set(
          { provider },
          Math.max(0, (allowance.resetsAt - Date.now()) / 1000),
        );
      this.gauges.budgetExhausted.set({ provider }, allowance.exhausted ? 1 : 0);
      this.gauges.budgetAllowed.set({ provider }, allowance.reclone > 0 ? 1 : 0);
    }
  }

  private async refreshWebhooks(): Promise<void> {
    const backlog = await this.webhooks.backlog();
    // Reset, so an endpoint whose backlog emptied (or that was removed) reads nothing stale.
    this.gauges.webhookBacklog.reset();
    this.gauges.webhookOldest.reset();
    for (const b of backlog) {
      this.gauges.webhookBacklog.set({ endpoint: b.endpointId }, b.pending);
      this.gauges.webhookOldest.set({ endpoint: b.endpointId }, b.oldestSeconds);
    }
  }

  private async refreshVoices(): Promise<void> {
    const [counts, ages] = await Promise.all([this.repo.statusCounts(), this.repo.inFlightAges()]);
    // Zero first, so a status that emptied since the last scrape reads 0, not its old count.
    for (const provider of this.providers.enabled()) {
      for (const status of COUNTED_STATUSES) this.gauges.voices.set({ provider, status }, 0);
      this.gauges.expiredAllocations.set({ provider }, 0);
      this.gauges.oldestAllocating.set({ provider }, 0);
      this.gauges.oldestReclaiming.set({ provider }, 0);
    }
    for (const c of counts)
      this.gauges.voices.set({ provider: c.provider, status: c.status }, c.voices);
    for (const a of ages) {
      this.gauges.expiredAllocations.set({ provider: a.provider }, a.expiredAllocations);
      this.gauges.oldestAllocating.set({ provider: a.provider }, a.oldestAllocatingSeconds ?? 0);
      this.gauges.oldestReclaiming.set({ provider: a.provider }, a.oldestReclaimingSeconds ?? 0);
    }
  }

  private async refreshJobs(): Promise<void> {
    await Promise.all(
      Object.values(QueueName).map(async (name) => {
        const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
        const counts = await queue.getJobCounts();
        for (const state of BULL_STATES)
          this.gauges.jobs.set({ queue: name, state }, counts[state]);
      }),
    );
  }
}
