import type { ProviderName } from '../../../src/config/app-config';
import type { ProviderFaults } from '../../../src/providers/sandbox/sandbox-server';
import type { Protection } from '../../../test/support/hand-over';
import type { Mode } from '../../lib/report';

export interface Params {
  seed: number;
  chaosSeconds: number;
  voices: Record<ProviderName, number>;
  serviceLimit: Record<ProviderName, number>;
  providerLimit: Record<ProviderName, number>;
  workers: number;
  users: number;
  /** Every this long the provider faults switch between 429s with and without Retry-After. */
  faultSegmentSeconds: number;
  hangMs: number;
  env: Record<string, string>;
}

export type ProcessFault = 'sigkill' | 'sigstop' | 'redisRestart' | 'postgresRestart';

export interface PlannedFault {
  atMs: number;
  kind: ProcessFault;
}

export const PROVIDERS: ProviderName[] = ['elevenlabs', 'cartesia'];

/** The provider faults of one segment; rates per request. */
export function providerFaults(retryAfter: boolean, hangMs: number): ProviderFaults {
  const ra = retryAfter ? { retryAfterSeconds: 1 } : {};
  return {
    create: { lostAnswer: 0.25, error5xx: 0.15, rateLimit: 0.15, ...ra },
    any: {
      lostAnswer: 0.12,
      error5xx: 0.15,
      rateLimit: 0.12,
      timeout: 0.015,
      timeoutMs: hangMs,
      ...ra,
    },
  };
}

/** The process faults, spread over the campaign with seeded jitter. */
export function plan(random: () => number, chaosMs: number): PlannedFault[] {
  const out: PlannedFault[] = [];
  const every = (kind: ProcessFault, periodMs: number, offsetMs: number) => {
    for (let t = offsetMs; t < chaosMs - 5_000; t += periodMs)
      out.push({ atMs: Math.round(t + random() * periodMs * 0.3), kind });
  };
  every('sigkill', 12_000, 4_000);
  every('sigstop', 40_000, 15_000);
  every('redisRestart', 60_000, 25_000);
  every('postgresRestart', 60_000, 50_000);
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** The campaign's sizes and the service's settings for it; FAULTS_SEED picks the seed. */
export function campaignParams(
  mode: Mode,
  seed: number,
): { params: Params; protection: Protection; leaseSeconds: number } {
  const leaseSeconds = 4;
  const params: Params = {
    seed,
    chaosSeconds: mode === 'quick' ? 40 : 330,
    voices: { elevenlabs: 40, cartesia: 20 },
    serviceLimit: { elevenlabs: 10, cartesia: 6 },
    providerLimit: { elevenlabs: 40, cartesia: 40 },
    workers: 3,
    users: 5,
    faultSegmentSeconds: 8,
    // Past the adapters' 30 s timeout: the call is abandoned by us, not answered late.
    hangMs: 35_000,
    env: {
      ALLOCATION_LEASE_SECONDS: String(leaseSeconds),
      ACTIVATION_LEASE_SECONDS: '2',
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      // Reconciliation deletes orphans: it would hide them from the count.
      RECONCILE_INTERVAL_SECONDS: '86400',
      SCHEDULER_TICK_SECONDS: '10',
      // Fault rates far beyond a real provider's: a voice is not given up by design here, so a
      // voice not ready at the end is a defect, not the attempt limit doing its job.
      MAX_ATTEMPTS: '40',
      BREAKER_FAILURE_THRESHOLD: '20',
      BREAKER_COOLDOWN_SECONDS: '2',
      USER_MAX_PENDING: '50',
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '6000',
      LOG_LEVEL: 'warn',
    },
  };
  const protection: Protection = {
    minIdleMs: 1_000,
    minResidencyMs: 1_000,
    activationLeaseMs: 2_000,
    allocationLeaseMs: leaseSeconds * 1000,
  };
  return { params, protection, leaseSeconds };
}
