import type { WebhookDeliveryService } from '../webhooks/webhook-delivery.service';
import type { WebhooksRepository } from '../webhooks/webhooks.repository';
import { Logger } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import type { ProviderCallObserver } from '../providers/instrumented-provider';
import type { ProviderRegistry } from '../providers/provider-registry';
import type {
  ReconcileObserver,
  ReconcileReport,
  ReconcileService,
} from '../reclaim/reconcile.service';
import type { BudgetRefusalListener, CloneBudgetService } from '../slots/clone-budget.service';
import type { ProviderCapacity, SlotsRepository } from '../slots/slots.repository';
import type { AppConfig } from '../config/config.module';
import type { SampleStorage } from '../voice/sample-storage.port';
import type { VoiceEventsListener } from '../voice/voice-events.listener';
import type { Voice } from '../voice/voice';
import type { VoiceStatus } from '../voice/voice-status';
import type { TransitionRecord, VoiceRepository } from '../voice/voice.repository';
import type { MetricsRepository } from './metrics.repository';
import { MetricsService } from './metrics.service';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function voice(status: VoiceStatus, over: Partial<Voice> = {}): Voice {
  return {
    id: 'v-1',
    userId: 'alice',
    provider: 'elevenlabs',
    status,
    createdAt: new Date(T0),
    claimedAt: null,
    readyAt: null,
    ...over,
  } as Voice;
}

function setup(opts: { jobsFail?: boolean; refreshSeconds?: number } = {}) {
  let transition: (t: TransitionRecord) => void = () => undefined;
  let refused: BudgetRefusalListener = () => undefined;
  const budget = {
    view: () =>
      Promise.resolve({
        account: { used: 90, clonesTotal: '12', clonesAtRead: '10' },
        allowance: {
          first: 3,
          reclone: 0,
          exhausted: false,
          limit: 95,
          remaining: 3,
          resetsAt: Date.now() + 3_600_000,
          recloneAllowedAt: null,
        },
      }),
    onRefused: (l: BudgetRefusalListener) => (refused = l),
  };
  let observer: ProviderCallObserver | null = null;
  let reconciled: ReconcileObserver = () => undefined;
  /** Reads of shared state (one per refresh). */
  const reads = { count: 0 };
  const capacity: Partial<ProviderCapacity> = {
    limit: 10,
    held: 4,
    free: 5,
    foreign: 1,
    queued: 7,
    oldestQueuedSeconds: 42,
    breaker: 'open',
  };
  const metrics = new MetricsService(
    { capacity: () => Promise.resolve(capacity) } as unknown as SlotsRepository,
    {
      statusCounts: () => {
        reads.count++;
        return Promise.resolve([{ provider: 'elevenlabs', status: 'allocating', voices: 3 }]);
      },
      inFlightAges: () =>
        Promise.resolve([
          {
            provider: 'elevenlabs',
            expiredAllocations: 2,
            oldestAllocatingSeconds: 900,
            oldestReclaimingSeconds: null,
          },
        ]),
    } as unknown as MetricsRepository,
    {
      enabled: () => ['elevenlabs'],
      setObserver: (o: ProviderCallObserver) => (observer = o),
    } as unknown as ProviderRegistry,
    { onTransition: (l: typeof transition) => (transition = l) } as unknown as VoiceRepository,
    {} as SampleStorage,
    {
      get: () => ({
        getJobCounts: () =>
          opts.jobsFail
            ? Promise.reject(new Error('redis down'))
            : Promise.resolve({ waiting: 1, active: 2, delayed: 0, failed: 3 }),
      }),
    } as unknown as ModuleRef,
    budget as unknown as CloneBudgetService,
    { METRICS_REFRESH_SECONDS: opts.refreshSeconds ?? 0 } as AppConfig,
    {
      backlog: () => Promise.resolve([{ endpointId: 'e1', pending: 12, oldestSeconds: 90 }]),
    } as unknown as WebhooksRepository,
    { setObserver: () => undefined } as unknown as WebhookDeliveryService,
    { waiterCount: 0 } as VoiceEventsListener,
    { onReconciled: (l: ReconcileObserver) => (reconciled = l) } as unknown as ReconcileService,
  );
  metrics.onModuleInit();
  return {
    metrics,
    reads,
    transition: (t: TransitionRecord) => transition(t),
    observer: () => observer,
    reconciled: (...args: Parameters<ReconcileObserver>) => reconciled(...args),
    refused: (...args: Parameters<BudgetRefusalListener>) => refused(...args),
  };
}

async function value(metrics: MetricsService, name: string, labels: Record<string, string>) {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((v) =>
    Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l),
  );
  return found?.value;
}

describe('MetricsService', () => {
  it('shows the clone budget: used, limit, time to reset, allowance, refusals', async () => {
    const { metrics, refused } = setup();
    await metrics.render();
    const el = { provider: 'elevenlabs' };
    expect(await value(metrics, 'voice_slots_clone_budget_used', el)).toBe(92);
    expect(await value(metrics, 'voice_slots_clone_budget_limit', el)).toBe(95);
    const toReset = await value(metrics, 'voice_slots_clone_budget_seconds_to_reset', el);
    expect(toReset).toBeGreaterThan(3590);
    expect(toReset).toBeLessThanOrEqual(3600);
    expect(await value(metrics, 'voice_slots_clone_budget_exhausted', el)).toBe(0);
    expect(await value(metrics, 'voice_slots_clone_budget_allowed_now', el)).toBe(0);
    refused('elevenlabs', 'paced', 2);
    expect(
      await value(metrics, 'voice_slots_clone_budget_refusals_total', { ...el, reason: 'paced' }),
    ).toBe(2);
  });

  it('counts an allocation and times claim → ready and upload → ready', async () => {
    const { metrics, transition } = setup();
    transition({
      voice: voice('ready', { claimedAt: new Date(T0 + 8_000), readyAt: new Date(T0 + 10_000) }),
      from: 'allocating',
      event: { type: 'ready', reason: 'remote_created' },
    });

    const el = { provider: 'elevenlabs' };
    expect(
      await value(metrics, 'voice_slots_allocation_attempts_total', {
        ...el,
        result: 'remote_created',
      }),
    ).toBe(1);
    expect(
      await value(metrics, 'voice_slots_allocation_duration_seconds', { ...el, le: '2.5' }),
    ).toBe(1);
    expect(
      await value(metrics, 'voice_slots_allocation_duration_seconds', { ...el, le: '1' }),
    ).toBe(0);
    expect(await value(metrics, 'voice_slots_time_to_ready_seconds', { ...el, le: '10' })).toBe(1);
    expect(await value(metrics, 'voice_slots_time_to_ready_seconds', { ...el, le: '5' })).toBe(0);
  });

  it('tells retries, failures, reclaims and sweeper resolutions apart', async () => {
    const { metrics, transition } = setup();
    transition({
      voice: voice('allocating'),
      from: 'allocating',
      event: { type: 'attempt_failed', reason: 'provider_retryable' },
    });
    // The sweeper's take-over is a step, not a resolution; what follows is.
    transition({
      voice: voice('allocating'),
      from: 'allocating',
      event: { type: 'requeued', reason: 'lease_expired' },
    });
    transition({
      voice: voice('queued'),
      from: 'allocating',
      event: { type: 'requeued', reason: 'lease_expired' },
    });
    transition({
      voice: voice('failed'),
      from: 'allocating',
      event: { type: 'failed', reason: 'attempts_exhausted' },
    });
    transition({
      voice: voice('reclaimed'),
      from: 'reclaiming',
      event: { type: 'reclaimed', reason: 'idle_reclaim' },
    });

    const el = { provider: 'elevenlabs' };
    expect(
      await value(metrics, 'voice_slots_allocation_retries_total', {
        ...el,
        reason: 'provider_retryable',
      }),
    ).toBe(1);
    expect(await value(metrics, 'voice_slots_sweeper_resolutions_total', el)).toBe(1);
    expect(
      await value(metrics, 'voice_slots_sweeper_resolutions_total', { ...el, outcome: 'requeued' }),
    ).toBe(1);
    expect(
      await value(metrics, 'voice_slots_failures_total', { ...el, reason: 'attempts_exhausted' }),
    ).toBe(1);
    expect(
      await value(metrics, 'voice_slots_reclaims_total', { ...el, reason: 'idle_reclaim' }),
    ).toBe(1);
    // Attempts: the retryable failure and the exhausted one, not the sweeper's moves.
    const attempts = await metrics.registry
      .getSingleMetric('voice_slots_allocation_attempts_total')
      ?.get();
    expect(attempts?.values.map((v) => [v.labels.result, v.value])).toEqual([
      ['provider_retryable', 1],
      ['attempts_exhausted', 1],
    ]);
  });

  it('reads shared state at scrape, and one failing source does not fail the scrape', async () => {
    const { metrics } = setup({ jobsFail: true });
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const text = await metrics.render();
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();

    expect(text).toContain('voice_slots_queue_depth{provider="elevenlabs"} 7');
    expect(text).toContain(
      'voice_slots_provider_breaker_state{provider="elevenlabs",state="open"} 1',
    );
    expect(text).toContain(
      'voice_slots_provider_breaker_state{provider="elevenlabs",state="closed"} 0',
    );
    expect(text).toContain('voice_slots_voices{provider="elevenlabs",status="allocating"} 3');
    expect(text).toContain('voice_slots_voices{provider="elevenlabs",status="queued"} 0');
    expect(text).toContain('voice_slots_allocations_lease_expired{provider="elevenlabs"} 2');
    expect(text).toContain('voice_slots_allocating_oldest_seconds{provider="elevenlabs"} 900');
    expect(text).not.toContain('voice_slots_queue_jobs{');
  });

  it('records provider calls, reconciliation findings and storage failures', async () => {
    const { metrics, observer, reconciled } = setup();
    observer()?.onCall({
      provider: 'elevenlabs',
      operation: 'createVoice',
      outcome: 'capacity',
      errorCode: 'voice_limit_reached',
      durationSeconds: 0.3,
    });
    reconciled('elevenlabs', { orphansDeleted: 2, missingReady: 1 } as ReconcileReport);
    metrics.recordStorageFailure('open');

    const text = await metrics.render();
    expect(text).toContain(
      'voice_slots_provider_requests_total{provider="elevenlabs",operation="createVoice",outcome="capacity"} 1',
    );
    expect(text).toContain(
      'voice_slots_reconciliation_findings_total{provider="elevenlabs",finding="orphan_deleted"} 2',
    );
    expect(text).toContain(
      'voice_slots_reconciliation_findings_total{provider="elevenlabs",finding="ready_missing"} 1',
    );
    expect(text).toContain('voice_slots_sample_storage_failures_total{operation="open"} 1');
    expect(text).toContain('voice_slots_queue_jobs{queue="metadata",state="failed"} 3');
  });

  it('reads shared state once for a burst of scrapes, and again once the refresh period passed', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const { metrics, reads } = setup({ refreshSeconds: 5 });
      const texts = await Promise.all(Array.from({ length: 20 }, () => metrics.render()));
      expect(reads.count).toBe(1);
      expect(
        new Set(
          texts.map((t) => /voice_slots_metrics_refreshed_timestamp_seconds (\S+)/.exec(t)?.[1]),
        ).size,
      ).toBe(1);
      jest.advanceTimersByTime(4_000);
      await metrics.render();
      expect(reads.count).toBe(1);
      jest.advanceTimersByTime(1_500);
      await Promise.all([metrics.render(), metrics.render()]);
      expect(reads.count).toBe(2);
    } finally {
      jest.useRealTimers();
    }
  });

  it('with no refresh period, reads at every scrape, still once for scrapes that overlap', async () => {
    const { metrics, reads } = setup({ refreshSeconds: 0 });
    await Promise.all([metrics.render(), metrics.render(), metrics.render()]);
    expect(reads.count).toBe(1);
    await metrics.render();
    expect(reads.count).toBe(2);
  });
});
