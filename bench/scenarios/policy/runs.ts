import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { replay, type ReplayDetail, type ReplayOptions } from '../../../src/replay/replay';
import { parseTrace, type Trace } from '../../../src/replay/trace';

export const ROOT = resolve(__dirname, '../../..');
export const FIXTURES = join(ROOT, 'test/fixtures/traces');
export const SLOTS = [10, 30, 160] as const;

/**
 * Hits of textbook LRU and Belady on the fixtures, computed by the independent reference
 * simulator (test/reference/cache_sim.py, `python3 test/reference/cache_sim.py FILE 10 30 160`),
 * not by the replay: a quick run fails when the replay disagrees with any of them.
 */
export const EXPECTED_HITS: Record<string, Record<number, { lru: number; belady: number }>> = {
  'tiny.csv': { 2: { lru: 0, belady: 4 }, 3: { lru: 1, belady: 7 } },
  'small.csv': {
    10: { lru: 12133, belady: 12793 },
    30: { lru: 12728, belady: 13394 },
    160: { lru: 13800, belady: 14043 },
  },
};

/** The budget scenario of issue 13: 95 clones per 30 days on 30 slots. */
export const BUDGET = { clones: 95, periodDays: 30, slots: 30 };

/** The generated trace too big to commit (replayed from its seed). */
export const LARGE = { users: 2000, voicesPerUser: 2, days: 30, seed: 2 };
/** About a million activations, for the replay's speed. */
export const MILLION = { users: 22000, voicesPerUser: 2, days: 30, seed: 7 };

export const fixture = (name: string): Trace =>
  parseTrace(readFileSync(join(FIXTURES, name), 'utf8'));

export type Row = Pick<
  ReplayDetail,
  | 'policy'
  | 'missRatio'
  | 'hits'
  | 'clones'
  | 'reclaims'
  | 'budgetExhaustedAt'
  | 'waitP50Seconds'
  | 'waitP99Seconds'
  | 'firstClones'
  | 'reclones'
  | 'refused'
  | 'exhaustedByPeriod'
  | 'durationSeconds'
> & { trace: string; slots: number; pure: boolean; budget: number | null; variant?: string };

export function run(
  name: string,
  trace: Trace,
  o: Partial<ReplayOptions> & Pick<ReplayOptions, 'policy' | 'slots'>,
  variant?: string,
): Row {
  const r = replay(trace, o);
  return {
    trace: name,
    slots: o.slots,
    pure: o.pure ?? false,
    budget: o.budget ?? null,
    variant,
    policy: r.policy,
    missRatio: r.missRatio,
    hits: r.hits,
    clones: r.clones,
    reclaims: r.reclaims,
    budgetExhaustedAt: r.budgetExhaustedAt,
    waitP50Seconds: r.waitP50Seconds,
    waitP99Seconds: r.waitP99Seconds,
    firstClones: r.firstClones,
    reclones: r.reclones,
    refused: r.refused,
    exhaustedByPeriod: r.exhaustedByPeriod,
    durationSeconds: r.durationSeconds,
  };
}

export const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;
export const days = (s: number | null): string =>
  s === null ? 'never' : `day ${(s / 86400).toFixed(1)}`;
