import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { parse } from 'yaml';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format into samples (enough for assertions, not a full parser). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; undefined if none. */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** Whether Prometheus' own promtool is on this machine (Debian package `prometheus`). */
export function hasPromtool(): boolean {
  return !spawnSync('promtool', ['--version'], { encoding: 'utf8', timeout: 30_000 }).error;
}

/** Runs promtool and returns its exit status and output. */
export function promtool(
  args: string[],
  input?: string,
): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  if (run.error)
    throw new Error(`promtool could not run (apt-get install prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** The syntax errors of a PromQL expression, by Prometheus' own grammar (the one its UI uses). */
export function promqlErrors(expr: string): string[] {
  const errors: string[] = [];
  parser.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError)
        errors.push(`syntax error at ${node.from}: ${expr.slice(node.from, node.from + 20)}`);
    },
  });
  return errors;
}

interface RuleFile {
  groups: {
    name: string;
    rules: { alert?: string; record?: string; expr: string; for?: string }[];
  }[];
}

/**
 * `promtool check rules` where promtool is installed; otherwise the same file checked without it:
 * the YAML's shape, names, `for` durations and every expression parsed by Prometheus' PromQL
 * grammar (@prometheus-io/lezer-promql). Either way: the rules counted and the problems found.
 */
export function checkRules(file: string): { rules: number; problems: string[]; by: string } {
  if (hasPromtool()) {
    const run = promtool(['check', 'rules', file]);
    const rules = Number(/SUCCESS: (\d+) rules found/.exec(run.output)?.[1] ?? 0);
    return { rules, problems: run.status === 0 ? [] : [run.output], by: 'promtool' };
  }
  const doc = parse(readFileSync(file, 'utf8')) as RuleFile;
  const problems: string[] = [];
  let rules = 0;
  for (const group of doc.groups ?? []) {
    for (const rule of group.rules ?? []) {
      rules++;
      const name = rule.alert ?? rule.record ?? '';
      if (!/^[a-zA-Z_:][\w:]*$/.test(name)) problems.push(`${group.name}: bad rule name "${name}"`);
      if (rule.for !== undefined && !/^(\d+(ms|s|m|h|d|w|y))+$/.test(rule.for))
        problems.push(`${name}: bad for "${rule.for}"`);
      for (const e of promqlErrors(String(rule.expr))) problems.push(`${name}: ${e}`);
    }
  }
  return { rules, problems, by: 'lezer-promql' };
}

/**
 * `promtool check metrics` where promtool is installed; otherwise its main rules applied to the
 * exposition: every family has HELP and TYPE, counters end in `_total`, no series twice.
 */
export function lintMetrics(text: string): { problems: string[]; by: string } {
  if (hasPromtool()) {
    const run = promtool(['check', 'metrics'], text);
    return { problems: run.status === 0 && !run.output ? [] : [run.output], by: 'promtool' };
  }
  const problems: string[] = [];
  const help = new Set<string>();
  const types = new Map<string, string>();
  const series = new Set<string>();
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') help.add(meta[2]);
      else types.set(meta[2], meta[3] ?? '');
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const key = line.slice(0, line.lastIndexOf(' '));
    if (series.has(key)) problems.push(`duplicate series ${key}`);
    series.add(key);
  }
  for (const [name, type] of types) {
    if (!help.has(name)) problems.push(`${name}: no HELP`);
    if (type === 'counter' && !name.endsWith('_total'))
      problems.push(`${name}: counter without _total`);
  }
  return { problems, by: 'own lint (no promtool)' };
}

/** Values of one series in a Prometheus text scrape. */
export const metric = (text: string, name: string, labels = ''): number[] =>
  [...text.matchAll(new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'gm'))].map(
    (m) => Number(m[1]),
  );
