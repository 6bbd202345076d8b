import { Logger } from '@nestjs/common';
import { loadConfig } from '../config/app-config';
import type { ProviderRegistry } from '../providers/provider-registry';
import type { SampleStorage } from '../voice/sample-storage.port';
import type { Voice } from '../voice/voice';
import type { Sql, VoiceRepository } from '../voice/voice.repository';
import { AllocationService } from './allocation.service';
import { RetryLaterError } from './retry-later.error';
import { backoffDelayMs, MAX_RETRY_AFTER_MS } from '../queue/backoff';
import { ProviderError } from '../providers/provider-error';
import type { CapacityService } from './capacity.service';
import type { CloneBudgetService } from './clone-budget.service';
import type { DispatcherService } from './dispatcher.service';
import type { AllocationLeaseRepository } from './allocation-lease.repository';
import { AllocationFailureService } from './allocation-failure.service';
import type { BreakerRepository } from '../providers/breaker.repository';

const LEASE_SECONDS = 10;

const voice = {
  id: 'v1',
  userId: 'u1',
  name: 'Alice',
  provider: 'elevenlabs',
  language: null,
  status: 'allocating',
  fencingToken: '7',
  attempts: 1,
  remoteTries: 1,
  sample: {
    key: 'k',
    contentType: 'audio/wav',
    filename: 'a.wav',
    sizeBytes: 10,
    sha256: '0',
    format: 'wav',
    durationMs: 1000,
    sampleRate: 16000,
    channels: 1,
  },
} as unknown as Voice;

/**
 * The allocation's ports replaced by stubs: `frozenMs` is how long the process stands still
 * (frozen, or starved of CPU) between taking its lease and the provider call.
 */
function setUp(opts: {
  frozenMs: number;
  leaseStillHeld: boolean;
  createError?: ProviderError;
  breaker?: 'open' | 'closed';
}) {
  const createVoice = opts.createError
    ? jest.fn().mockRejectedValue(opts.createError)
    : jest.fn().mockResolvedValue({ remoteVoiceId: 'r1' });
  const budget = {
    afterCloneOutcome: jest.fn(),
    markExhausted: jest.fn().mockResolvedValue(undefined),
  };
  const capacity = {
    refreshAccount: jest.fn().mockResolvedValue(undefined),
    requestReconcile: jest.fn().mockResolvedValue(undefined),
  };
  const renewLease = jest.fn().mockResolvedValue(opts.leaseStillHeld);
  const transition = jest.fn().mockResolvedValue(voice);
  const leases = {
    beginAttempt: jest.fn(() => {
      jest.advanceTimersByTime(opts.frozenMs);
      return Promise.resolve({ voice, breaker: 'closed', breakerFailures: 0 });
    }),
    renewLease,
  } as unknown as AllocationLeaseRepository;
  const breaker = {
    recordProviderFailure: jest.fn().mockResolvedValue(opts.breaker ?? 'closed'),
  } as unknown as BreakerRepository;
  const config = loadConfig({ ALLOCATION_LEASE_SECONDS: String(LEASE_SECONDS) });
  const voices = { transition } as unknown as VoiceRepository;
  const dispatcher = { nudge: jest.fn() } as unknown as DispatcherService;
  const service = new AllocationService(
    config,
    voices,
    leases,
    breaker,
    {
      get: () => ({ createVoice, findByIdempotencyKey: jest.fn() }),
    } as unknown as ProviderRegistry,
    {} as SampleStorage,
    dispatcher,
    budget as unknown as CloneBudgetService,
    new AllocationFailureService(
      config,
      voices,
      breaker,
      dispatcher,
      capacity as unknown as CapacityService,
      budget as unknown as CloneBudgetService,
    ),
  );
  return { service, createVoice, renewLease, transition, budget, capacity };
}

describe('AllocationService and its lease', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('creates at once while the lease has time left, without an extra round trip', async () => {
    const { service, createVoice, renewLease } = setUp({ frozenMs: 0, leaseStillHeld: true });
    await expect(service.allocate('v1', '7')).resolves.toBe('ready');
    expect(createVoice).toHaveBeenCalledTimes(1);
    expect(renewLease).not.toHaveBeenCalled();
  });

  it('never creates after standing still past its lease once the voice was taken over', async () => {
    const { service, createVoice, transition } = setUp({
      frozenMs: LEASE_SECONDS * 1000 + 1,
      leaseStillHeld: false,
    });
    await expect(service.allocate('v1', '7')).resolves.toBe('stale');
    expect(createVoice).not.toHaveBeenCalled();
    expect(transition).not.toHaveBeenCalled();
  });

  it('renews a lapsed lease that nobody took over and goes on', async () => {
    const { service, createVoice, renewLease } = setUp({
      frozenMs: LEASE_SECONDS * 1000 + 1,
      leaseStillHeld: true,
    });
    await expect(service.allocate('v1', '7')).resolves.toBe('ready');
    expect(renewLease).toHaveBeenCalledWith('v1', '7', LEASE_SECONDS);
    expect(createVoice).toHaveBeenCalledTimes(1);
  });
});

describe('AllocationService when the clone budget is spent', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  it('queues the voice again without spending an attempt, marks the budget, reclaims nothing', async () => {
    const refused = new ProviderError(
      'elevenlabs',
      'budget',
      'voice_add_edit_limit_reached',
      'monthly limit of voice add/edit operations',
      403,
    );
    const { service, transition, budget, capacity } = setUp({
      frozenMs: 0,
      leaseStillHeld: true,
      createError: refused,
    });
    await expect(service.allocate('v1', '7')).resolves.toBe('requeued');
    expect(transition).toHaveBeenCalledWith(
      expect.objectContaining({
        to: 'queued',
        event: expect.objectContaining({ reason: 'provider_budget' }) as unknown,
      }),
    );
    const set = (transition.mock.calls[0] as [{ set: Record<string, unknown> }])[0].set;
    expect(String((set.attempts as { text: string }).text)).toContain('attempts - 1');
    expect(budget.markExhausted).toHaveBeenCalledWith('elevenlabs');
    expect(budget.afterCloneOutcome).toHaveBeenCalledWith('elevenlabs');
    // A full library recounts and reconciles; a spent budget must not (nothing to free).
    expect(capacity.refreshAccount).not.toHaveBeenCalled();
    expect(capacity.requestReconcile).not.toHaveBeenCalled();
  });
});

describe('AllocationService and a Retry-After of a year', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  const YEAR_MS = 31_536_000 * 1000;
  const throttled = () =>
    new ProviderError('elevenlabs', 'retryable', 'rate_limited', 'slow down', 429, YEAR_MS);
  /** The seconds the allocation lease was extended by, read from the transition's SQL. */
  const leaseSeconds = (transition: jest.Mock): number => {
    const set = (transition.mock.calls[0][0] as { set: { allocationLeaseExpiresAt: unknown } }).set;
    const m = /interval '(\d+) seconds'/.exec((set.allocationLeaseExpiresAt as Sql).text);
    return Number(m?.[1]);
  };

  it.each([['closed'], ['open']] as const)(
    'retries within five minutes and keeps the lease no longer (breaker %s)',
    async (breaker) => {
      const { service, transition } = setUp({
        frozenMs: 0,
        leaseStillHeld: true,
        createError: throttled(),
        breaker,
      });
      const thrown = (await service
        .allocate('v1', '7')
        .catch((e: unknown) => e)) as RetryLaterError;
      expect(thrown).toBeInstanceOf(RetryLaterError);
      const delay = backoffDelayMs(5, thrown);
      // The breaker's own jitter adds at most a fifth.
      expect(delay).toBeLessThanOrEqual(MAX_RETRY_AFTER_MS * 1.2);
      expect(delay).toBeGreaterThan(0);
      const seconds = leaseSeconds(transition);
      expect(seconds).toBeGreaterThanOrEqual(Math.floor(delay / 1000));
      expect(seconds).toBeLessThanOrEqual(LEASE_SECONDS + (MAX_RETRY_AFTER_MS * 1.2) / 1000 + 61);
    },
  );
});
