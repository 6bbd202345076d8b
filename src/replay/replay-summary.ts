import type { PolicyName } from '../policy/reclaim-policy';
import type { ReplayOptions } from './replay-options';
import type { SimulatedBudget } from './simulated-budget';

/** The replay's answer, exactly the fields of CONTRACT.md. */
export interface ReplayResult {
  policy: PolicyName;
  slots: number;
  requests: number;
  hits: number;
  misses: number;
  missRatio: number;
  clones: number;
  reclaims: number;
  /** Seconds from the trace's start when the budget first ran out (remaining 0); null: never. */
  budgetExhaustedAt: number | null;
  /** Percentiles over every activation (a hit waits 0), seconds. */
  waitP50Seconds: number;
  waitP99Seconds: number;
}

/** What the benchmark reads beside the contract's fields. */
export interface ReplayDetail extends ReplayResult {
  /** Misses the budget refused (pure mode only). */
  refused: number;
  firstClones: number;
  reclones: number;
  /** Per budget period (index = period), seconds when it ran out, or null. */
  exhaustedByPeriod: (number | null)[];
  durationSeconds: number;
}

/** Nearest-rank percentile of a sorted sample. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

export function summarise(
  o: ReplayOptions,
  requests: number,
  hits: number,
  clones: { first: number; reclone: number },
  reclaims: number,
  refused: number,
  budget: SimulatedBudget,
  waits: Float64Array,
  started: number,
): ReplayDetail {
  waits.sort();
  const misses = requests - hits;
  return {
    policy: o.policy,
    slots: o.slots,
    requests,
    hits,
    misses,
    missRatio: requests ? round(misses / requests, 6) : 0,
    clones: clones.first + clones.reclone,
    reclaims,
    budgetExhaustedAt: budget.firstExhaustion(),
    waitP50Seconds: round(percentile(waits, 50), 3),
    waitP99Seconds: round(percentile(waits, 99), 3),
    refused,
    firstClones: clones.first,
    reclones: clones.reclone,
    exhaustedByPeriod: budget.exhaustedByPeriod,
    durationSeconds: round((performance.now() - started) / 1000, 3),
  };
}
