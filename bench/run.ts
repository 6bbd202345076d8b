/**
 * `npm run bench [-- --quick] [-- --only throughput,contended,hotpath,scale,policy,faults,webhooks]`
 *
 * Runs issue 8's benchmarks on the real stack (Postgres, Redis, the built service as child
 * processes, the provider sandbox), writes bench/results/<scenario>.json, summary.md and
 * contended.svg, and on a full run checks every target (PASS/MISS; exit code 1 on a MISS).
 * A quick run (CI) writes to bench/results/quick/, runs smaller sizes and judges every scenario's
 * correctness checks (every voice ready, no duplicates, no request errors, right answers, the
 * replay's LRU and Belady against the reference), not its performance targets. A scenario that
 * throws is a MISS of its own and the others still run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cleanupAll, machine, progress, writeFileAtomic, type Machine } from './lib/common';
import { mustEqual, summaryMarkdown, verdict, type Mode, type ScenarioResult } from './lib/report';
import { contended } from './scenarios/contended';
import { faults } from './scenarios/faults';
import { hotpath } from './scenarios/hotpath';
import { policy } from './scenarios/policy';
import { scale } from './scenarios/scale';
import { throughput } from './scenarios/throughput';
import { webhooks } from './scenarios/webhooks';

const SCENARIOS = { throughput, contended, hotpath, scale, policy, faults, webhooks } as const;
type ScenarioName = keyof typeof SCENARIOS;
/** Run only when named: the fault campaign takes about seven minutes on its own. */
const OPT_IN: readonly ScenarioName[] = ['faults'];

function parseArgs(argv: string[]): { mode: Mode; only: ScenarioName[] } {
  const mode: Mode = argv.includes('--quick') ? 'quick' : 'full';
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  const names = Object.keys(SCENARIOS) as ScenarioName[];
  if (i < 0) return { mode, only: names.filter((n) => !OPT_IN.includes(n)) };
  const list = (argv[i].includes('=') ? argv[i].split('=')[1] : (argv[i + 1] ?? '')).split(',');
  const unknown = list.filter((n) => !names.includes(n as ScenarioName));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(', ')}`);
  return { mode, only: list as ScenarioName[] };
}

async function main(): Promise<number> {
  const { mode, only } = parseArgs(process.argv.slice(2));
  const runId = new Date().toISOString();
  const outDir = resolve(__dirname, 'results', mode === 'quick' ? 'quick' : '.');
  const host = await machine();
  progress(
    `${mode} run of ${only.join(', ')} on ${host.cpuModel} × ${host.cpuCount}, ` +
      `Node ${host.node}, PostgreSQL ${host.postgres}, Redis ${host.redis}; results in ${outDir}`,
  );
  const results: ScenarioResult[] = [];
  for (const name of only) {
    progress(`── ${name}`);
    const started = Date.now();
    const result: ScenarioResult = await SCENARIOS[name](mode, host, outDir).then(
      (r) => ({ ...r, runId }),
      (err: unknown) => crashed(name, mode, runId, host, started, err),
    );
    writeFileAtomic(join(outDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    results.push(result);
    for (const c of result.checks)
      progress(
        `${verdict(c).padEnd(11)} ${c.scenario}: ${c.metric}: ${c.display} (target ${c.target})`,
      );
  }
  // The summary covers every scenario: those not run now show their last result of this mode,
  // each row labelled with the run it comes from (summaryMarkdown).
  const all = (Object.keys(SCENARIOS) as ScenarioName[]).flatMap((name) => {
    const fresh = results.find((r) => r.scenario === name);
    if (fresh) return [fresh];
    const file = join(outDir, `${name}.json`);
    if (!existsSync(file)) return [];
    const previous = JSON.parse(readFileSync(file, 'utf8')) as ScenarioResult;
    return previous.mode === mode ? [previous] : [];
  });
  const chart = all.some((r) => r.scenario === 'contended') ? 'contended.svg' : null;
  writeFileAtomic(join(outDir, 'summary.md'), summaryMarkdown(mode, runId, host, all, chart));
  const checks = results.flatMap((r) => r.checks).filter((c) => !c.info);
  const missed = checks.filter((c) => c.pass === false);
  const judged = checks.filter((c) => c.pass !== null);
  progress(
    mode === 'quick'
      ? `quick run done: ${judged.length} correctness checks judged, ${missed.length} MISS ` +
          `(${checks.length - judged.length} performance targets measured, not judged); ` +
          join(outDir, 'summary.md')
      : `done: ${checks.length - missed.length} PASS, ${missed.length} MISS; ${join(outDir, 'summary.md')}`,
  );
  return missed.length ? 1 : 0;
}

/** A scenario that threw: its one check (ran to the end) is a MISS, with the error beside it. */
function crashed(
  name: string,
  mode: Mode,
  runId: string,
  host: Machine,
  started: number,
  err: unknown,
): ScenarioResult {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  progress(`${name} failed: ${message}`);
  const firstLine = message.split('\n')[0].replace(/\|/g, '\\|');
  return {
    scenario: name,
    mode,
    runId,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine: host,
    params: {},
    results: { error: message },
    checks: [
      {
        ...mustEqual(mode, name, 'ran to the end without an error', 0, 1, firstLine),
        target: 'no error',
      },
    ],
  };
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    progress(`${signal}: cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanupAll();
    process.exit(2);
  });
