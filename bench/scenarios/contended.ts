import { join } from 'node:path';
import { replay } from '../../src/replay/replay';
import { parseTrace } from '../../src/replay/trace';
import { progress, round, writeFileAtomic, type Machine } from '../lib/common';
import { contendedChart } from '../lib/chart';
import { check, info, mustEqual, type Check, type Mode, type ScenarioResult } from '../lib/report';
import { pct, s, simulatedSummary, toTraceCsv } from './contended/measure';
import { runStrategy } from './contended/drive';
import type { Params, StrategyRun } from './contended/workload';

/**
 * Scenario 2: a few slots, more users than slots, random arrivals of usage sessions (activate,
 * hold, stop), reclaim on, a provider with latency; run once with the fair scheduler and once
 * with the replaced design (SCHEDULER_STRATEGY=legacy) on the same seeded workload.
 */
export async function contended(
  mode: Mode,
  machine: Machine,
  outDir: string,
): Promise<ScenarioResult> {
  const started = Date.now();
  const p: Params = {
    slots: 5,
    users: 8,
    voicesPerUser: 4,
    loopsPerUser: 2,
    arrivalSeconds: mode === 'quick' ? 20 : 120,
    meanThinkSeconds: 2,
    holdSeconds: [1, 3],
    sandboxLatencyMs: 200,
    sandboxHeadroom: 5,
    activationLeaseSeconds: 2,
    reclaimMinIdleSeconds: 1,
    reclaimMinResidencySeconds: 1,
    drainTimeoutSeconds: mode === 'quick' ? 30 : 90,
    seed: 8,
    // For exploring other loads without editing: BENCH_CONTENDED='{"meanThinkSeconds":4}'.
    ...(JSON.parse(process.env.BENCH_CONTENDED ?? '{}') as Partial<Params>),
  };
  progress(
    `contended: ${p.users} users × ${p.loopsPerUser} usage loops for ${p.arrivalSeconds} s, ` +
      `${p.slots} slots, sandbox latency ${p.sandboxLatencyMs} ms, seed ${p.seed}`,
  );
  const runs: StrategyRun[] = [];
  for (const strategy of ['fair', 'legacy'] as const) runs.push(await runStrategy(strategy, p));
  const [fair, legacy] = runs;

  // The anchor: the fair run's own sessions (same users, voices, times and holds) replayed
  // through the same policy module at zero overhead: every decision is instant, the rules (lease,
  // idle, residency) are the service's settings, and a clone takes what the provider takes for a
  // hand-over: the victim's delete, then the create (a slot is held until its delete returns).
  const traceCsv = toTraceCsv(fair.sessionRecords);
  writeFileAtomic(join(outDir, 'contended-trace.csv'), traceCsv);
  const replayOptions = {
    policy: 'service' as const,
    slots: p.slots,
    pure: false,
    budget: null,
    leaseSeconds: p.activationLeaseSeconds,
    minIdleSeconds: p.reclaimMinIdleSeconds,
    minResidencySeconds: p.reclaimMinResidencySeconds,
    cloneSeconds: (2 * p.sandboxLatencyMs) / 1000,
  };
  const simulated = replay(parseTrace(traceCsv), replayOptions);
  const sim = simulatedSummary(simulated);
  progress(
    `contended: replay of the fair run's ${simulated.requests} sessions (policy service, zero ` +
      `overhead): p99 ${sim.p99Seconds} s, hit ratio ${pct(sim.hitRatio)}, ` +
      `${sim.clonesPerThousand} clones per 1,000; measured p99 ${s(fair.sessionTimeToReadyMs.p99)}`,
  );

  const svg = contendedChart(
    runs.map((r) => ({
      title: `${r.strategy}: p99 time to ready ${(r.timeToReadyMs.p99 / 1000).toFixed(1)} s`,
      limit: p.slots,
      series: r.samples.map((x) => ({ t: x.t, queued: x.queued, held: x.remoteHeld })),
    })),
  );
  writeFileAtomic(join(outDir, 'contended.svg'), svg);

  const measuredP99 = fair.sessionTimeToReadyMs.p99 / 1000;
  const anchorRatio = sim.p99Seconds > 0 ? measuredP99 / sim.p99Seconds : Infinity;
  const p99Ratio = fair.timeToReadyMs.p99 / legacy.timeToReadyMs.p99;
  const checks: Check[] = [
    ...runs.flatMap((r) => [
      mustEqual(
        mode,
        'contended',
        `${r.strategy}: request errors (answers other than 200/202, or none)`,
        r.requestErrors,
        0,
        r.requestErrors ? `${r.requestErrors}: ${r.errors[0]}` : '0',
      ),
      mustEqual(
        mode,
        'contended',
        `${r.strategy}: most voices held at the provider beyond the service's limit of ${p.slots}`,
        r.maxOverServiceLimit,
        0,
        `${r.maxOverServiceLimit} (most held ${r.maxHeldAtProvider}, provider limit ${p.slots + p.sandboxHeadroom})`,
      ),
    ]),
    mustEqual(
      mode,
      'contended',
      `fair: activations not served within the drain time (${p.drainTimeoutSeconds} s)`,
      fair.unfinished,
      0,
      `${fair.unfinished} of ${fair.waits.length} (legacy ${legacy.unfinished})`,
    ),
    check(mode, {
      scenario: 'contended',
      metric:
        "fair: p99 time to ready ÷ the replay's p99 (same sessions, policy service, zero overhead)",
      value: round(anchorRatio, 3),
      display: `${anchorRatio.toFixed(2)} (${measuredP99.toFixed(2)} s vs ${sim.p99Seconds.toFixed(2)} s)`,
      comparator: '<=',
      threshold: 1.25,
    }),
    info(
      'contended',
      'hit ratio and clones per 1,000 sessions: fair / replay / legacy',
      round(fair.hitRatio, 4),
      `${pct(fair.hitRatio)} / ${pct(sim.hitRatio)} / ${pct(legacy.hitRatio)}; ` +
        `${fair.clonesPerThousand} / ${sim.clonesPerThousand} / ${legacy.clonesPerThousand}`,
    ),
    info(
      'contended',
      'p99 time to ready, fair ÷ legacy',
      round(p99Ratio, 3),
      `${p99Ratio.toFixed(2)} (${s(fair.timeToReadyMs.p99)} vs ${s(legacy.timeToReadyMs.p99)})`,
    ),
    check(mode, {
      scenario: 'contended',
      metric: 'fair: slot utilisation at the provider while a backlog exists',
      value: round(fair.utilisationWhileBacklog, 4),
      display:
        `${pct(fair.utilisationWhileBacklog)} (service's rows ${pct(fair.serviceUtilisationWhileBacklog)}; ` +
        `legacy ${pct(legacy.utilisationWhileBacklog)})`,
      comparator: '>=',
      threshold: 0.95,
    }),
    check(mode, {
      scenario: 'contended',
      metric: "fair: Jain's index of per-user mean time to ready",
      value: round(fair.jainIndex, 4),
      display: `${fair.jainIndex.toFixed(3)} (legacy ${legacy.jainIndex.toFixed(3)})`,
      comparator: '>=',
      threshold: 0.95,
    }),
    info(
      'contended',
      'reclaims, sessions interrupted (voice taken while in use), voice_limit_reached: fair / legacy',
      fair.reclaims,
      `${fair.reclaims} / ${legacy.reclaims}; ${fair.interruptions} / ${legacy.interruptions}; ` +
        `${fair.voiceLimitReached} / ${legacy.voiceLimitReached}`,
    ),
  ];
  return {
    scenario: 'contended',
    mode,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    params: { ...p },
    results: {
      ...Object.fromEntries(runs.map((r) => [r.strategy, r])),
      replay: {
        of: 'the fair run: each session (its first activation) a row of contended-trace.csv',
        options: replayOptions,
        ...sim,
        detail: simulated,
        measuredOverSimulatedP99: round(anchorRatio, 3),
      },
    },
    checks,
  };
}
