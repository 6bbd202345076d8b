import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const PROVIDER = ['provider'] as const;

/** The series the service exports, registered on `registry`; names and help texts in one place. */
export function defineMetrics(registry: Registry) {
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });

  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });

  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ) => new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });

  const gauges = {
    limit: gauge('voice_slots_limit', 'Slot limit per provider account', PROVIDER),
    held: gauge('voice_slots_held', 'Slots held by the service', PROVIDER),
    free: gauge('voice_slots_free', 'Free slots', PROVIDER),
    foreign: gauge(
      'voice_slots_foreign',
      'Voices on the account not created by the service (found by reconciliation)',
      PROVIDER,
    ),
    queued: gauge('voice_slots_queue_depth', 'Voices waiting for a slot', PROVIDER),
    oldest: gauge(
      'voice_slots_queue_oldest_wait_seconds',
      'Wait of the oldest queued voice',
      PROVIDER,
    ),
    breaker: gauge(
      'voice_slots_provider_breaker_state',
      "Circuit breaker of a provider: 1 for its current state's series",
      ['provider', 'state'],
    ),
    voices: gauge('voice_slots_voices', 'Voices per in-flight status', ['provider', 'status']),
    expiredAllocations: gauge(
      'voice_slots_allocations_lease_expired',
      'Allocations whose lease ran out and that the sweeper has not resolved yet',
      PROVIDER,
    ),
    oldestAllocating: gauge(
      'voice_slots_allocating_oldest_seconds',
      'Time since the oldest current allocation claimed its slot (0 when none)',
      PROVIDER,
    ),
    oldestReclaiming: gauge(
      'voice_slots_reclaiming_oldest_seconds',
      'Time the oldest voice has been reclaiming (0 when none)',
      PROVIDER,
    ),
    jobs: gauge('voice_slots_queue_jobs', 'Bull jobs per queue and state', ['queue', 'state']),
    budgetUsed: gauge(
      'voice_slots_clone_budget_used',
      'Clone operations spent this budget period (the provider counter plus our clones since)',
      PROVIDER,
    ),
    budgetLimit: gauge(
      'voice_slots_clone_budget_limit',
      'Clone operations per budget period (absent: no budget known)',
      PROVIDER,
    ),
    budgetResetSeconds: gauge(
      'voice_slots_clone_budget_seconds_to_reset',
      'Seconds until the clone budget resets (absent: unknown)',
      PROVIDER,
    ),
    budgetExhausted: gauge(
      'voice_slots_clone_budget_exhausted',
      '1 while the clone budget is spent until its reset',
      PROVIDER,
    ),
    budgetAllowed: gauge(
      'voice_slots_clone_budget_allowed_now',
      '1 when the pacing lets a re-clone out now',
      PROVIDER,
    ),
    webhookBacklog: gauge(
      'voice_slots_webhook_backlog',
      'Webhook deliveries not yet delivered nor failed, per endpoint',
      ['endpoint'],
    ),
    webhookOldest: gauge(
      'voice_slots_webhook_oldest_pending_seconds',
      'Age of the oldest undelivered webhook event, per endpoint',
      ['endpoint'],
    ),
    refreshedAt: gauge(
      'voice_slots_metrics_refreshed_timestamp_seconds',
      'When the gauges above were last read from Postgres and Redis (see METRICS_REFRESH_SECONDS)',
      [],
    ),
  };

  const counters = {
    attempts: counter(
      'voice_slots_allocation_attempts_total',
      'Allocation attempts by their result (the event reason that ended them)',
      ['provider', 'result'],
    ),
    retries: counter(
      'voice_slots_allocation_retries_total',
      'Allocation attempts that failed and will be retried',
      ['provider', 'reason'],
    ),
    failures: counter(
      'voice_slots_failures_total',
      'Voices that ended failed (dead letters, listed by GET /v1/admin/voices?status=failed)',
      ['provider', 'reason'],
    ),
    reclaims: counter('voice_slots_reclaims_total', 'Voices reclaimed', ['provider', 'reason']),
    sweeper: counter(
      'voice_slots_sweeper_resolutions_total',
      'Expired allocations resolved by the sweeper',
      ['provider', 'outcome'],
    ),
    reconciliationRuns: counter(
      'voice_slots_reconciliation_runs_total',
      'Reconciliation runs finished',
      PROVIDER,
    ),
    reconciliationFindings: counter(
      'voice_slots_reconciliation_findings_total',
      'What reconciliation corrected: orphan remote voices deleted, ready voices missing remotely',
      ['provider', 'finding'],
    ),
    storageFailures: counter(
      'voice_slots_sample_storage_failures_total',
      'Failed sample storage operations',
      ['operation'],
    ),
    providerRequests: counter(
      'voice_slots_provider_requests_total',
      'Calls to provider APIs by outcome (ok, retryable, capacity, fatal, not_found, error)',
      ['provider', 'operation', 'outcome'],
    ),
    webhookAttempts: counter(
      'voice_slots_webhook_attempts_total',
      'Webhook delivery attempts by outcome (delivered, retry: failed and due again, failed: for good)',
      ['outcome'],
    ),
    budgetRefusals: counter(
      'voice_slots_clone_budget_refusals_total',
      'Queued voices a dispatch held back although a slot was free, because the clone budget ' +
        'was spent (exhausted) or the pacing said not yet (paced); counted per dispatch',
      ['provider', 'reason'],
    ),
  };

  const histograms = {
    allocation: histogram(
      'voice_slots_allocation_duration_seconds',
      'From slot claim to ready (readyAt - claimedAt)',
      ['provider'],
      [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    ),
    timeToReady: histogram(
      'voice_slots_time_to_ready_seconds',
      'From upload to ready (readyAt - createdAt)',
      ['provider'],
      [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400],
    ),
    provider: histogram(
      'voice_slots_provider_request_duration_seconds',
      'Duration of calls to provider APIs',
      ['provider', 'operation'],
      [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    ),
    webhook: histogram(
      'voice_slots_webhook_attempt_duration_seconds',
      'Duration of webhook delivery attempts (the receiver’s answer or the timeout)',
      [],
      [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
    ),
    http: histogram(
      'voice_slots_http_request_duration_seconds',
      'Duration of HTTP requests served',
      ['method', 'route', 'status'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    ),
  };

  return { gauges, counters, histograms };
}

export type ServiceMetrics = ReturnType<typeof defineMetrics>;
