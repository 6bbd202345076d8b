import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { ApiClient } from '../../test/support/api';
import type { ServiceProcess, TestWorld } from '../../test/support/service';
import { makeWav } from '../../test/support/wav';
import {
  distribution,
  jain,
  progress,
  seededRandom,
  sleep,
  writeFileAtomic,
  type Distribution,
  type Machine,
} from '../lib/common';
import { contendedChart } from '../lib/chart';
import { check, info, type Check, type Mode, type ScenarioResult } from '../lib/report';
import {
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  waitForAccountLimit,
} from '../lib/world';

type Strategy = 'fair' | 'legacy';

interface Params {
  slots: number;
  users: number;
  voicesPerUser: number;
  /** Concurrent usage loops per user: each wants one voice at a time. */
  loopsPerUser: number;
  arrivalSeconds: number;
  /** Mean of the exponential pause between a loop's sessions. */
  meanThinkSeconds: number;
  holdSeconds: [number, number];
  sandboxLatencyMs: number;
  activationLeaseSeconds: number;
  reclaimMinIdleSeconds: number;
  reclaimMinResidencySeconds: number;
  drainTimeoutSeconds: number;
  seed: number;
}

/** One usage session of a loop: pause, then want one of the user's voices for a while. */
interface Session {
  thinkMs: number;
  /** Which of the user's voices, before skipping those the user's other loops hold. */
  pick: number;
  holdMs: number;
}

interface Wait {
  user: number;
  kind: 'upload' | 'activation' | 'reacquire';
  ms: number;
  /** Still not ready when the run ended: `ms` is a lower bound. */
  unfinished: boolean;
}

interface Sample {
  t: number;
  queued: number;
  held: number;
  remoteHeld: number;
}

interface StrategyRun {
  strategy: Strategy;
  waits: Wait[];
  samples: Sample[];
  timeToReadyMs: Distribution;
  perUserMeanMs: number[];
  jainIndex: number;
  utilisationWhileBacklog: number;
  backlogSamples: number;
  remoteUtilisationWhileBacklog: number;
  reclaims: number;
  voiceLimitReached: number;
  maxHeldAtProvider: number;
  interruptions: number;
  unfinished: number;
  errors: string[];
  sessions: number;
  allocations: number;
}

/**
 * The workload of one loop, drawn from the seed: exponential pauses (so sessions arrive as a
 * Poisson-like stream), a voice and a hold time per session. Both strategies draw the same one.
 */
function sessionsOf(p: Params, user: number, loop: number): () => Session {
  const random = seededRandom(p.seed * 1000 + user * 10 + loop);
  return () => ({
    thinkMs: Math.round(-Math.log(1 - random()) * p.meanThinkSeconds * 1000),
    pick: Math.floor(random() * p.voicesPerUser),
    holdMs: Math.round(
      1000 * (p.holdSeconds[0] + random() * (p.holdSeconds[1] - p.holdSeconds[0])),
    ),
  });
}

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
      `${p.slots} slots, sandbox latency ${p.sandboxLatencyMs} ms`,
  );
  const runs: StrategyRun[] = [];
  for (const strategy of ['fair', 'legacy'] as const) runs.push(await runStrategy(strategy, p));

  const svg = contendedChart(
    runs.map((r) => ({
      title: `${r.strategy}: p99 time to ready ${(r.timeToReadyMs.p99 / 1000).toFixed(1)} s`,
      limit: p.slots,
      series: r.samples.map((s) => ({ t: s.t, queued: s.queued, held: s.held })),
    })),
  );
  writeFileAtomic(join(outDir, 'contended.svg'), svg);

  const [fair, legacy] = runs;
  const p99Ratio = fair.timeToReadyMs.p99 / legacy.timeToReadyMs.p99;
  const checks: Check[] = [
    check(mode, {
      scenario: 'contended',
      metric: 'p99 time to ready, fair ÷ legacy',
      value: round(p99Ratio, 3),
      display: `${p99Ratio.toFixed(2)} (${s(fair.timeToReadyMs.p99)} vs ${s(legacy.timeToReadyMs.p99)})`,
      comparator: '<=',
      threshold: 0.2,
    }),
    check(mode, {
      scenario: 'contended',
      metric: 'fair: slot utilisation while a backlog exists',
      value: round(fair.utilisationWhileBacklog, 4),
      display: `${pct(fair.utilisationWhileBacklog)} (legacy ${pct(legacy.utilisationWhileBacklog)})`,
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
    check(mode, {
      scenario: 'contended',
      metric: 'fair: voice_limit_reached answers',
      value: fair.voiceLimitReached,
      display: `${fair.voiceLimitReached} (legacy ${legacy.voiceLimitReached})`,
      comparator: '==',
      threshold: 0,
    }),
    info(
      'contended',
      'reclaims, fair / legacy',
      fair.reclaims,
      `${fair.reclaims} / ${legacy.reclaims}`,
    ),
  ];
  return {
    scenario: 'contended',
    mode,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    params: { ...p },
    results: Object.fromEntries(runs.map((r) => [r.strategy, r])),
    checks,
  };
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

async function runStrategy(strategy: Strategy, p: Params): Promise<StrategyRun> {
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: p.sandboxLatencyMs,
    voiceLimit: { elevenlabs: p.slots, cartesia: 100 },
  });
  try {
    progress(`contended/${strategy}: starting the service`);
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      SCHEDULER_STRATEGY: strategy,
      SCHEDULER_TICK_SECONDS: '1',
      RECLAIM_MIN_IDLE_SECONDS: String(p.reclaimMinIdleSeconds),
      RECLAIM_MIN_RESIDENCY_SECONDS: String(p.reclaimMinResidencySeconds),
      ACTIVATION_LEASE_SECONDS: String(p.activationLeaseSeconds),
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '100000000',
      RATE_LIMIT_READS_PER_MINUTE: '100000000',
      RATE_LIMIT_WRITES_PER_MINUTE: '100000000',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '1000000',
    });
    await waitForAccountLimit(world, p.slots);
    return await drive(strategy, p, world, service, () => sandbox.state().elevenlabs);
  } finally {
    await dispose();
    await close();
  }
}

async function drive(
  strategy: Strategy,
  p: Params,
  world: TestWorld,
  service: ServiceProcess,
  sandboxState: () => { held: number; voiceLimitReachedCount: number; maxHeld: number },
): Promise<StrategyRun> {
  const clients = Array.from(
    { length: p.users },
    (_, u) => new ApiClient(service.url, `bench-user-${u}`),
  );
  const wav = makeWav(2);
  const voiceIds = new Map<string, string>();
  const waits: Wait[] = [];
  const errors: string[] = [];
  let interruptions = 0;
  let stopAt = Infinity;
  const t0 = performance.now();
  const now = () => performance.now() - t0;

  /** Activates until 200; the time it took is one sample of time to ready. */
  const acquire = async (
    client: ApiClient,
    user: number,
    id: string,
    kind: Wait['kind'],
    from: number,
  ) => {
    for (;;) {
      if (now() > stopAt) {
        waits.push({ user, kind, ms: now() - from, unfinished: true });
        return false;
      }
      const res = await client.request('POST', `/v1/voices/${id}/activate?waitSeconds=5`);
      if (res.status === 200) {
        waits.push({ user, kind, ms: now() - from, unfinished: false });
        return true;
      }
      if (res.status !== 202)
        throw new Error(`activate: ${res.status} ${JSON.stringify(res.body)}`);
    }
  };

  let sessions = 0;
  /** Voices of each user that one of the user's loops is using now. */
  const inUse = Array.from({ length: p.users }, () => new Set<number>());

  const runSession = async (user: number, session: Session) => {
    const client = clients[user];
    let voice = session.pick;
    while (inUse[user].has(voice)) voice = (voice + 1) % p.voicesPerUser;
    inUse[user].add(voice);
    try {
      sessions++;
      const key = `${user}:${voice}`;
      const from = now();
      let id = voiceIds.get(key);
      let kind: Wait['kind'] = 'activation';
      if (!id) {
        const res = await client.upload({ name: `voice ${key}`, file: wav });
        if (res.status !== 202)
          throw new Error(`upload: ${res.status} ${JSON.stringify(res.body)}`);
        id = res.body.id as string;
        voiceIds.set(key, id);
        kind = 'upload';
      }
      if (!(await acquire(client, user, id, kind, from))) return;
      // In use: the app activates again as it speaks; a voice taken away meanwhile is re-acquired.
      const holdEnd = now() + session.holdMs;
      while (now() < holdEnd && now() < stopAt) {
        await sleep(Math.min(700, Math.max(0, holdEnd - now())));
        if (now() >= holdEnd) break;
        const res = await client.request('POST', `/v1/voices/${id}/activate`);
        if (res.status === 200) continue;
        if (res.status !== 202)
          throw new Error(`activate: ${res.status} ${JSON.stringify(res.body)}`);
        interruptions++;
        if (!(await acquire(client, user, id, 'reacquire', now()))) return;
      }
    } finally {
      inUse[user].delete(voice);
    }
  };

  /** One usage loop of a user: pause, use a voice, stop, again, until new sessions stop. */
  const loop = async (user: number, index: number) => {
    const next = sessionsOf(p, user, index);
    for (;;) {
      const session = next();
      await sleep(session.thinkMs);
      if (now() > p.arrivalSeconds * 1000) return;
      await runSession(user, session).catch((err: unknown) => {
        errors.push(String(err));
      });
    }
  };

  // Sampler: queue depth and slots in use, as the service counts them, and at the provider.
  const sampler = new Client({ connectionString: world.databaseUrl });
  await sampler.connect();
  const samples: Sample[] = [];
  let sampling = true;
  const sampling$ = (async () => {
    while (sampling) {
      const { rows } = await sampler.query<{ queued: number; held: number }>(
        `SELECT count(*) FILTER (WHERE status = 'queued')::int AS queued,
                count(*) FILTER (WHERE status IN ('allocating','ready','reclaiming') OR remote_cleanup_pending)::int AS held
           FROM voices WHERE provider = 'elevenlabs'`,
      );
      samples.push({ t: round(now() / 1000, 2), ...rows[0], remoteHeld: sandboxState().held });
      await sleep(200);
    }
  })();

  progress(
    `contended/${strategy}: ${p.users * p.loopsPerUser} usage loops for ${p.arrivalSeconds} s`,
  );
  const ticker = setInterval(() => {
    const last = samples[samples.length - 1];
    progress(
      `contended/${strategy}: t=${(now() / 1000).toFixed(0)} s, ${waits.length} ready answers, ` +
        `queued ${last?.queued ?? 0}, held ${last?.held ?? 0}/${p.slots}`,
    );
  }, 15_000);
  const loops = Array.from({ length: p.users * p.loopsPerUser }, (_, i) =>
    loop(Math.floor(i / p.loopsPerUser), i % p.loopsPerUser),
  );
  // New sessions stop after the arrival window; whatever still waits after the drain time counts
  // as unfinished (with its wait so far).
  await sleep(p.arrivalSeconds * 1000);
  stopAt = now() + p.drainTimeoutSeconds * 1000;
  await Promise.all(loops);
  clearInterval(ticker);
  sampling = false;
  await sampling$;
  await sampler.end();

  const counts = await world.db(async (c) => {
    const { rows } = await c.query<{ reclaims: number; allocations: number }>(
      `SELECT count(*) FILTER (WHERE type = 'reclaimed')::int AS reclaims,
              count(*) FILTER (WHERE type IN ('ready','adopted'))::int AS allocations FROM voice_events`,
    );
    return rows[0];
  });
  const state = sandboxState();
  const ms = waits.map((w) => w.ms);
  const perUserMeanMs = Array.from({ length: p.users }, (_, u) => {
    const mine = waits.filter((w) => w.user === u).map((w) => w.ms);
    return round(mine.reduce((a, b) => a + b, 0) / (mine.length || 1), 1);
  });
  const backlog = samples.filter((x) => x.queued > 0);
  const utilisation = (pick: (x: Sample) => number) =>
    backlog.length
      ? backlog.reduce((a, x) => a + Math.min(pick(x), p.slots) / p.slots, 0) / backlog.length
      : 1;
  const run: StrategyRun = {
    strategy,
    waits,
    samples,
    timeToReadyMs: distribution(ms, 0),
    perUserMeanMs,
    jainIndex: round(jain(perUserMeanMs), 4),
    utilisationWhileBacklog: round(
      utilisation((x) => x.held),
      4,
    ),
    backlogSamples: backlog.length,
    remoteUtilisationWhileBacklog: round(
      utilisation((x) => x.remoteHeld),
      4,
    ),
    reclaims: counts.reclaims,
    voiceLimitReached: state.voiceLimitReachedCount,
    maxHeldAtProvider: state.maxHeld,
    interruptions,
    unfinished: waits.filter((w) => w.unfinished).length,
    errors: errors.slice(0, 10),
    sessions,
    allocations: counts.allocations,
  };
  progress(
    `contended/${strategy}: time to ready p50 ${s(run.timeToReadyMs.p50)}, p95 ${s(run.timeToReadyMs.p95)}, ` +
      `p99 ${s(run.timeToReadyMs.p99)}; utilisation while backlog ${pct(run.utilisationWhileBacklog)}; ` +
      `Jain ${run.jainIndex}; reclaims ${run.reclaims}; voice_limit_reached ${run.voiceLimitReached}; ` +
      `interruptions ${interruptions}; unfinished ${run.unfinished}; errors ${errors.length}`,
  );
  return run;
}
