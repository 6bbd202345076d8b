import { POLICY_NAMES, type PolicyName } from '../../../src/policy/reclaim-policy';
import { generateRows, toCsv } from '../../../src/replay/generate';
import { parseTrace, type Trace } from '../../../src/replay/trace';
import { progress } from '../../lib/common';
import { check, info, type Check, type Mode } from '../../lib/report';
import { BUDGET, days, EXPECTED_HITS, fixture, MILLION, pct, run, SLOTS, type Row } from './runs';

/** Correctness: the replay's LRU and Belady against the reference's numbers (every mode). */
export function correctness(mode: Mode): { checks: Check[]; rows: Row[] } {
  const checks: Check[] = [];
  const rows: Row[] = [];
  for (const [file, bySlots] of Object.entries(EXPECTED_HITS)) {
    const trace = fixture(file);
    for (const [slotsText, expected] of Object.entries(bySlots)) {
      const slots = Number(slotsText);
      for (const policy of ['lru', 'belady'] as const) {
        const row = run(file, trace, { policy, slots, pure: true });
        rows.push(row);
        checks.push(
          check(mode, {
            scenario: 'policy',
            metric: `replay --pure ${policy} hits = reference, ${file}, ${slots} slots`,
            value: row.hits,
            display: `${row.hits} (reference ${expected[policy]})`,
            comparator: '==',
            threshold: expected[policy],
            always: true,
          }),
        );
      }
    }
  }
  return { checks, rows };
}

/** Every policy at 10, 30 and 160 slots, pure and with the service's rules. */
export function grid(mode: Mode, traces: [string, Trace][]): { checks: Check[]; rows: Row[] } {
  const checks: Check[] = [];
  const rows: Row[] = [];
  for (const [name, trace] of traces) {
    for (const pure of [true, false]) {
      for (const slots of SLOTS) {
        const by = {} as Record<PolicyName, Row>;
        for (const policy of POLICY_NAMES) {
          by[policy] = run(name, trace, { policy, slots, pure });
          rows.push(by[policy]);
        }
        const L = by.lru.missRatio;
        const B = by.belady.missRatio;
        const S = by.service.missRatio;
        const label = `${name}, ${slots} slots, ${pure ? 'pure' : 'service rules'}`;
        progress(`policy: ${label}: lru ${pct(L)}, service ${pct(S)}, belady ${pct(B)}`);
        if (L === B) {
          checks.push(
            info('policy', `miss ratio, ${label} (lru = belady)`, S, `service ${pct(S)}`),
          );
          continue;
        }
        const threshold = Number((B + (L - B) / 2).toFixed(6));
        checks.push(
          check(mode, {
            scenario: 'policy',
            metric: `service miss ratio ≤ belady + ½(lru − belady), ${label}`,
            value: S,
            display: `${pct(S)} (lru ${pct(L)}, belady ${pct(B)}; ${(((L - S) / (L - B)) * 100).toFixed(0)}% of the gap)`,
            comparator: '<=',
            threshold,
            target: `≤ ${pct(threshold)}`,
          }),
        );
      }
    }
  }
  return { checks, rows };
}

/** 95 clones per 30 days on 30 slots; the pacing's effect beside it (burst 1 = no pacing). */
export function budget(mode: Mode, traces: [string, Trace][]): { checks: Check[]; rows: Row[] } {
  const checks: Check[] = [];
  const rows: Row[] = [];
  for (const [name, trace] of traces) {
    for (const pure of [false, true]) {
      const base = {
        slots: BUDGET.slots,
        pure,
        budget: BUDGET.clones,
        periodDays: BUDGET.periodDays,
      };
      const lru = run(name, trace, { ...base, policy: 'lru' });
      const service = run(name, trace, { ...base, policy: 'service' });
      const unpaced = {
        lru: run(name, trace, { ...base, policy: 'lru', burstShare: 1 }, 'no pacing'),
        service: run(name, trace, { ...base, policy: 'service', burstShare: 1 }, 'no pacing'),
      };
      const unlimited = POLICY_NAMES.map((policy) =>
        run(name, trace, { ...base, policy, budget: null }, 'no budget'),
      );
      rows.push(lru, service, unpaced.lru, unpaced.service, ...unlimited);
      const label = `${name}, ${BUDGET.clones} clones/${BUDGET.periodDays} d, ${BUDGET.slots} slots, ${pure ? 'pure' : 'service rules'}`;
      // Periods in which LRU ran out of budget and the service did too, before the reset.
      const both = lru.exhaustedByPeriod.filter(
        (at, p) => at !== null && (service.exhaustedByPeriod[p] ?? null) !== null,
      ).length;
      const lruOut = lru.exhaustedByPeriod.map(days).join(', ');
      const serviceOut = service.exhaustedByPeriod.map(days).join(', ');
      checks.push(
        check(mode, {
          scenario: 'policy',
          metric: `periods where lru exhausts the budget and service does too, ${label}`,
          value: both,
          display: `${both} (exhausted per period: lru ${lruOut}; service ${serviceOut})`,
          comparator: '==',
          threshold: 0,
        }),
        check(mode, {
          scenario: 'policy',
          metric: `service miss ratio ≤ lru's under the budget, ${label}`,
          value: service.missRatio,
          display: `${pct(service.missRatio)} (lru ${pct(lru.missRatio)}; clones ${service.clones} vs ${lru.clones})`,
          comparator: '<=',
          threshold: lru.missRatio,
          target: `≤ ${pct(lru.missRatio)}`,
        }),
        info(
          'policy',
          `the pacing's effect, ${label}: miss ratio paced / unpaced (burst = whole budget)`,
          lru.missRatio,
          `lru ${pct(lru.missRatio)} / ${pct(unpaced.lru.missRatio)}, exhausted ${days(lru.budgetExhaustedAt)} / ${days(unpaced.lru.budgetExhaustedAt)}; ` +
            `service ${pct(service.missRatio)} / ${pct(unpaced.service.missRatio)}, exhausted ${days(service.budgetExhaustedAt)} / ${days(unpaced.service.budgetExhaustedAt)}; ` +
            `no budget: lru ${pct(unlimited[1].missRatio)}, service ${pct(unlimited[0].missRatio)}`,
        ),
      );
    }
  }
  return { checks, rows };
}

/** Seconds to parse and replay about a million activations, each policy, both modes. */
export function speed(mode: Mode): {
  checks: Check[];
  rows: Row[];
  activations: number;
  csvMiB: number;
} {
  progress(`policy: generating ${JSON.stringify(MILLION)}`);
  const csv = toCsv(generateRows(MILLION));
  const rows: Row[] = [];
  let worst = 0;
  let activations = 0;
  for (const pure of [true, false]) {
    for (const policy of POLICY_NAMES) {
      const started = performance.now();
      const trace = parseTrace(csv);
      activations = trace.time.length;
      const row = run('million', trace, { policy, slots: 160, pure });
      const seconds = (performance.now() - started) / 1000;
      rows.push({ ...row, durationSeconds: Number(seconds.toFixed(2)) });
      worst = Math.max(worst, seconds);
      progress(
        `policy: ${activations} activations, ${policy}, ${pure ? 'pure' : 'rules'}: ${seconds.toFixed(1)} s`,
      );
    }
  }
  return {
    checks: [
      check(mode, {
        scenario: 'policy',
        metric: `replay of ${activations} activations (parse + replay, slowest policy and mode)`,
        value: Number(worst.toFixed(2)),
        display: `${worst.toFixed(1)} s`,
        comparator: '<=',
        threshold: 60,
        target: '< 60 s',
      }),
    ],
    rows,
    activations,
    csvMiB: Number((csv.length / 2 ** 20).toFixed(1)),
  };
}
