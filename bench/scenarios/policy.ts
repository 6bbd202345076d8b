import { generateRows, toCsv } from '../../src/replay/generate';
import { parseTrace, type Trace } from '../../src/replay/trace';
import { progress, type Machine } from '../lib/common';
import { type Mode, type ScenarioResult } from '../lib/report';
import { BUDGET, EXPECTED_HITS, fixture, LARGE, MILLION, SLOTS } from './policy/runs';
import { budget, correctness, grid, speed } from './policy/studies';

/**
 * Issue 13's benchmark: the replay of the reclaim policy. Quick (CI): the correctness of the
 * baselines against known-correct numbers, judged even on a quick run, so a broken LRU or Belady
 * fails CI. Full: every policy at 10, 30 and 160 slots on the generated traces, pure and with the
 * service's rules; the budget scenario; the replay's speed on a million activations.
 */
export function policy(mode: Mode, machine: Machine, _outDir: string): Promise<ScenarioResult> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const parts = [correctness(mode)];
  let speedResult: ReturnType<typeof speed> | null = null;
  if (mode === 'full') {
    progress(`policy: generating the large trace ${JSON.stringify(LARGE)}`);
    const large = parseTrace(toCsv(generateRows(LARGE)));
    const traces: [string, Trace][] = [
      ['small.csv', fixture('small.csv')],
      ['medium.csv', fixture('medium.csv')],
      [`large (seed ${LARGE.seed})`, large],
    ];
    parts.push(grid(mode, traces));
    parts.push(budget(mode, [['budget.csv', fixture('budget.csv')]]));
    speedResult = speed(mode);
    parts.push(speedResult);
  }
  return Promise.resolve({
    scenario: 'policy',
    mode,
    startedAt,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    params: {
      slots: SLOTS,
      fixtures: Object.keys(EXPECTED_HITS),
      large: LARGE,
      million: MILLION,
      budget: BUDGET,
      replayDefaults: 'lease 300 s, residency 120 s, idle 600 s, clone 5 s, reserve 0.1, burst 0.1',
    },
    results: {
      rows: parts.flatMap((p) => p.rows),
      ...(speedResult && {
        million: { activations: speedResult.activations, csvMiB: speedResult.csvMiB },
      }),
    },
    checks: parts.flatMap((p) => p.checks),
  });
}
