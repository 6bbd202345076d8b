import type { Machine } from './common';

export type Mode = 'quick' | 'full';

/** One target of issue 8, checked on a full run (quick runs only report the value). */
export interface Check {
  scenario: string;
  /** What is measured, e.g. "allocations / Postgres commit ceiling". */
  metric: string;
  value: number;
  /** How the value reads in the table, e.g. "0.42 (812/s vs 1930/s)". */
  display: string;
  comparator: '>=' | '<=' | '==';
  threshold: number;
  /** The target as written in the table, e.g. "≥ 0.30". */
  target: string;
  /** null on a quick run: no thresholds there. */
  pass: boolean | null;
  /** Reported beside the targets, not a target itself. */
  info?: boolean;
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
    target: c.target ?? `${sign} ${c.threshold}`,
    pass: mode === 'full' || always ? Number.isFinite(c.value) && ok : null,
  };
}

export interface ScenarioResult {
  scenario: string;
  mode: Mode;
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

/** The Markdown summary: one table of every target, then the machine. */
export function summaryMarkdown(
  mode: Mode,
  machine: Machine,
  results: ScenarioResult[],
  chartFile: string | null,
): string {
  const lines = [
    `# Benchmark results (${mode} run, ${new Date().toISOString().slice(0, 19)}Z)`,
    '',
    `Machine: ${machine.cpuModel} × ${machine.cpuCount}, ${machine.totalMemoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, PostgreSQL ${machine.postgres}, Redis ${machine.redis}.`,
    '',
    '| scenario | metric | measured | target | result |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const r of results)
    for (const c of r.checks)
      lines.push(`| ${c.scenario} | ${c.metric} | ${c.display} | ${c.target} | ${verdict(c)} |`);
  lines.push('');
  for (const r of results) {
    lines.push(
      `- \`${r.scenario}.json\`: run ${r.startedAt.slice(0, 19)}Z, ${r.durationSeconds} s`,
    );
  }
  if (chartFile) {
    lines.push('', `![queue depth and slots in use](${chartFile})`);
  }
  lines.push('');
  return lines.join('\n');
}
