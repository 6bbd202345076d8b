import type { Machine } from './common';

export type Mode = 'quick' | 'full';

/** One target or correctness check of a scenario. */
export interface Check {
  scenario: string;
  /** What is measured, e.g. "service CPU per allocation ÷ floor". */
  metric: string;
  value: number;
  /** How the value reads in the table, e.g. "1.42 (3.7 ms vs 2.6 ms)". */
  display: string;
  comparator: '>=' | '<=' | '==';
  threshold: number;
  /** The target as written in the table, e.g. "≤ 2". */
  target: string;
  /** null when not judged: a performance target on a quick run, or a value reported as info. */
  pass: boolean | null;
  /** Reported beside the targets, not a target itself. */
  info?: boolean;
  /**
   * A correctness check (every voice ready, no request errors, the right answer): judged on quick
   * runs too, so CI fails on broken behaviour and not only on a crash.
   */
  correctness?: boolean;
}

/** A value reported beside the targets (e.g. the Bull ceiling ratio). */
export function info(scenario: string, metric: string, value: number, display: string): Check {
  return {
    scenario,
    metric,
    value,
    display,
    comparator: '==',
    threshold: NaN,
    target: '—',
    pass: null,
    info: true,
  };
}

/**
 * A target. `always`: a correctness check (e.g. the replay's LRU against known-correct numbers)
 * that is judged on quick runs too, so CI fails on it; other targets are judged on full runs only.
 */
export function check(
  mode: Mode,
  c: Omit<Check, 'pass' | 'target'> & { target?: string; always?: boolean },
): Check {
  const ok =
    c.comparator === '>='
      ? c.value >= c.threshold
      : c.comparator === '<='
        ? c.value <= c.threshold
        : c.value === c.threshold;
  const sign = c.comparator === '>=' ? '≥' : c.comparator === '<=' ? '≤' : '=';
  const { always, ...rest } = c;
  return {
    ...rest,
    ...(always ? { correctness: true } : {}),
    target: c.target ?? `${sign} ${c.threshold}`,
    pass: mode === 'full' || always ? Number.isFinite(c.value) && ok : null,
  };
}

/**
 * A correctness check whose value must equal `expected` (e.g. duplicates 0, ready voices = N),
 * judged in every mode.
 */
export function mustEqual(
  mode: Mode,
  scenario: string,
  metric: string,
  value: number,
  expected: number,
  display = String(value),
): Check {
  return check(mode, {
    scenario,
    metric,
    value,
    display,
    comparator: '==',
    threshold: expected,
    always: true,
  });
}

export interface ScenarioResult {
  scenario: string;
  mode: Mode;
  /** When the `npm run bench` invocation that produced this result started (ISO-8601). */
  runId?: string;
  startedAt: string;
  durationSeconds: number;
  machine: Machine;
  /** The workload's knobs, so a run can be repeated. */
  params: Record<string, unknown>;
  results: Record<string, unknown>;
  checks: Check[];
}

export function verdict(c: Check): string {
  if (c.info) return '—';
  return c.pass === null ? 'n/a (quick)' : c.pass ? 'PASS' : 'MISS';
}

const when = (iso: string) => `${iso.slice(0, 19).replace('T', ' ')}Z`;

/**
 * The Markdown summary: one table of every check, each row naming the run (`npm run bench`
 * invocation) it comes from, then the machine. `runId` is this invocation; rows of scenarios not
 * run now come from their last JSON and say so, so no figure passes for one run's when it is not.
 */
export function summaryMarkdown(
  mode: Mode,
  runId: string,
  machine: Machine,
  results: ScenarioResult[],
  chartFile: string | null,
): string {
  const runOf = (r: ScenarioResult) => r.runId ?? r.startedAt;
  const runs = [...new Set(results.map(runOf))].sort();
  const older = results.filter((r) => runOf(r) !== runId).map((r) => r.scenario);
  const lines = [
    `# Benchmark results (${mode} run ${when(runId)})`,
    '',
    older.length
      ? `**Rows from ${runs.length} different runs.** This run (${when(runId)}) ran ` +
        `${
          results
            .filter((r) => runOf(r) === runId)
            .map((r) => r.scenario)
            .join(', ') || 'nothing'
        }; ` +
        `${older.join(', ')} ${older.length === 1 ? 'is from an earlier run' : 'are from earlier runs'}, ` +
        'shown as they were then (the column "run" says which). Compare figures across runs with ' +
        'care: the machine is shared.'
      : `Every row is from this run (${when(runId)}).`,
    '',
    `Machine: ${machine.cpuModel} × ${machine.cpuCount}, ${machine.totalMemoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, PostgreSQL ${machine.postgres}, Redis ${machine.redis}.`,
    '',
    mode === 'quick'
      ? 'Quick run: correctness checks are judged (PASS/MISS); performance targets are measured on ' +
        'smaller sizes and not judged (n/a).'
      : 'Full run: every check and target is judged.',
    '',
    '| run | scenario | metric | measured | target | result |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const run = runOf(r) === runId ? `this run` : `**${when(runOf(r))}**`;
    for (const c of r.checks)
      lines.push(
        `| ${run} | ${c.scenario} | ${c.metric} | ${c.display} | ${c.target} | ${verdict(c)} |`,
      );
  }
  lines.push('');
  for (const r of results) {
    lines.push(
      `- \`${r.scenario}.json\`: run ${when(runOf(r))}, scenario started ` +
        `${r.startedAt.slice(0, 19)}Z, ${r.durationSeconds} s`,
    );
  }
  if (chartFile) {
    lines.push('', `![queue depth and slots in use](${chartFile})`);
  }
  lines.push('');
  return lines.join('\n');
}
