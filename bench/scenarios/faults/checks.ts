import { distribution } from '../../lib/common';
import { check, info, type Check, type Mode } from '../../lib/report';

/** The campaign's rows: the faults injected, every defect (target zero) and the hand-over times. */
export function faultChecks(
  mode: Mode,
  faultsByKind: Record<string, number>,
  totalFaults: number,
  defects: Record<string, number>,
  reclaimLate: number[],
  refill: number[],
): Check[] {
  const S = 'faults';
  const zero = (metric: string, value: number): Check =>
    check(mode, {
      scenario: S,
      metric,
      value,
      display: String(value),
      comparator: '==',
      threshold: 0,
      always: true,
    });
  const kinds = Object.entries(faultsByKind)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    check(mode, {
      scenario: S,
      metric: 'faults injected',
      value: totalFaults,
      display: `${totalFaults} (${kinds})`,
      comparator: '>=',
      threshold: 1000,
    }),
    zero('duplicate remote voices ever alive', defects.duplicatesEverAlive),
    zero(
      'voices beyond the service limit at the provider (max at any moment)',
      defects.maxOverServiceLimit,
    ),
    zero('orphan remote voices before any reconciliation', defects.orphansBeforeReconciliation),
    zero('voices not ready when activated at the end', defects.voicesNotReadyAtEnd),
    zero('5xx answers to users', defects.serverErrors),
    info(
      S,
      'reclaim after the victim became reclaimable (ms, whole campaign)',
      distribution(reclaimLate, 0).p50,
      `p50 ${distribution(reclaimLate, 0).p50}, p99 ${distribution(reclaimLate, 0).p99}, max ${distribution(reclaimLate, 0).max}`,
    ),
    info(
      S,
      'freed slot → next claim (ms, whole campaign)',
      distribution(refill, 0).p50,
      `p50 ${distribution(refill, 0).p50}, p99 ${distribution(refill, 0).p99}, max ${distribution(refill, 0).max}`,
    ),
  ];
}
