import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { replay, type ReplayDetail } from '../../src/replay/replay';
import { parseTrace } from '../../src/replay/trace';
import type { SandboxHandle } from '../../src/providers/sandbox/sandbox-server';
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
import { check, info, mustEqual, type Check, type Mode, type ScenarioResult } from '../lib/report';
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
  /**
   * The sandbox's own limit is this much above the service's (`slots`), so a claim past the
   * service's limit shows up at the provider instead of being refused there.
   */
  sandboxHeadroom: number;
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

/** A usage session's first activation: one row of the replay's trace. */
interface SessionRecord {
  user: number;
  /** `user:voice`, the voice as the replay's trace names it. */
  voice: string;
  /** When the session wanted its voice (ms from the start), before any upload. */
  atMs: number;
  holdMs: number;
  waitMs: number;
  unfinished: boolean;
  /** The voice was ready: the first activation answered 200. */
  hit: boolean;
}

interface Sample {
  t: number;
  /** Epoch ms, to line up with the sandbox's record of voices held. */
  at: number;
  queued: number;
  held: number;
  remoteHeld: number;
}

interface StrategyRun {
  strategy: Strategy;
  waits: Wait[];
  sessionRecords: SessionRecord[];
  samples: Sample[];
  timeToReadyMs: Distribution;
  /** Each session's first activation only (the replay's rows), ms. */
  sessionTimeToReadyMs: Distribution;
  hitRatio: number;
  /** Creates at the provider per 1,000 sessions. */
  clonesPerThousand: number;
  perUserMeanMs: number[];
  jainIndex: number;
  /** At the provider: the sandbox's record of voices held, over the time a backlog existed. */
  utilisationWhileBacklog: number;
  /** The same from the service's own rows (allocating, ready, reclaiming), sampled. */
  serviceUtilisationWhileBacklog: number;
  backlogSamples: number;
  backlogSeconds: number;
  reclaims: number;
  voiceLimitReached: number;
  maxHeldAtProvider: number;
  /** The most voices held at the provider beyond the service's limit at any moment. */
  maxOverServiceLimit: number;
  creates: number;
  interruptions: number;
  unfinished: number;
  /** Requests that failed (an answer other than 200/202, or no answer): each ended a session. */
  requestErrors: number;
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

const round = (v: number, digits: number) => Number(v.toFixed(digits));
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/** The replay's trace (CONTRACT.md "Replay of the reclaim policy") of a run's sessions. */
function toTraceCsv(sessions: readonly SessionRecord[]): string {
  const rows = [...sessions].sort((a, b) => a.atMs - b.atMs);
  return [
    'time,user,voice,hold',
    ...rows.map(
      (r) =>
        `${(r.atMs / 1000).toFixed(3)},user-${r.user},${r.voice},${(r.holdMs / 1000).toFixed(3)}`,
    ),
    '',
  ].join('\n');
}

function simulatedSummary(r: ReplayDetail) {
  return {
    sessions: r.requests,
    hitRatio: r.requests ? r.hits / r.requests : 0,
    clones: r.clones,
    clonesPerThousand: r.requests ? Math.round((1000 * r.clones) / r.requests) : 0,
    p50Seconds: r.waitP50Seconds,
    p99Seconds: r.waitP99Seconds,
  };
}

/**
 * The share of the slots the provider held over the backlog's time: each sampler interval that
 * began with queued voices counts, weighted by its length, with the sandbox's held count
 * integrated exactly over it (capped at the limit: a voice beyond it is no extra utilisation).
 */
function providerUtilisation(
  samples: readonly Sample[],
  history: ReadonlyArray<{ at: number; held: number }>,
  slots: number,
): { utilisation: number; seconds: number } {
  let weighted = 0;
  let total = 0;
  // history[k] is the last change at or before the time reached; history[0] is the sandbox's
  // start, before any sample.
  let k = 0;
  for (let i = 0; i + 1 < samples.length; i++) {
    const from = samples[i].at;
    const to = samples[i + 1].at;
    while (k + 1 < history.length && history[k + 1].at <= from) k++;
    if (samples[i].queued === 0) continue;
    let t = from;
    while (t < to) {
      const change = k + 1 < history.length ? history[k + 1].at : Infinity;
      const end = Math.min(change, to);
      weighted += (Math.min(history[k].held, slots) / slots) * (end - t);
      t = end;
      if (change <= t) k++;
    }
    total += to - from;
  }
  return { utilisation: total ? weighted / total : 1, seconds: total / 1000 };
}

async function runStrategy(strategy: Strategy, p: Params): Promise<StrategyRun> {
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: p.sandboxLatencyMs,
    voiceLimit: { elevenlabs: p.slots + p.sandboxHeadroom, cartesia: 100 },
    serviceLimit: { elevenlabs: p.slots },
  });
  try {
    progress(`contended/${strategy}: starting the service`);
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      ELEVENLABS_SLOT_LIMIT: String(p.slots),
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
    await waitForAccountLimit(world, p.slots + p.sandboxHeadroom);
    return await drive(strategy, p, world, service, sandbox);
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
  sandbox: SandboxHandle,
): Promise<StrategyRun> {
  const clients = Array.from(
    { length: p.users },
    (_, u) => new ApiClient(service.url, `bench-user-${u}`),
  );
  const wav = makeWav(2);
  const voiceIds = new Map<string, string>();
  const waits: Wait[] = [];
  const sessionRecords: SessionRecord[] = [];
  const errors: string[] = [];
  let requestErrors = 0;
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
  ): Promise<{ served: boolean; firstAnswer: number }> => {
    let firstAnswer = 0;
    for (;;) {
      if (now() > stopAt) {
        waits.push({ user, kind, ms: now() - from, unfinished: true });
        return { served: false, firstAnswer };
      }
      // The first request answers at once, so a 200 to it says the voice was held (a hit); the
      // others wait up to 5 s each for the voice to become ready.
      const res = await client.request(
        'POST',
        `/v1/voices/${id}/activate${firstAnswer ? '?waitSeconds=5' : ''}`,
      );
      firstAnswer ||= res.status;
      if (res.status === 200) {
        waits.push({ user, kind, ms: now() - from, unfinished: false });
        return { served: true, firstAnswer };
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
      const first = await acquire(client, user, id, kind, from);
      sessionRecords.push({
        user,
        voice: `v${key.replace(':', '-')}`,
        atMs: from,
        holdMs: session.holdMs,
        waitMs: now() - from,
        unfinished: !first.served,
        hit: kind === 'activation' && first.firstAnswer === 200,
      });
      if (!first.served) return;
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
        if (!(await acquire(client, user, id, 'reacquire', now())).served) return;
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
      // A failed request ends its session, and is counted: the run fails on any.
      await runSession(user, session).catch((err: unknown) => {
        requestErrors++;
        if (errors.length < 10) errors.push(String(err));
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
      samples.push({
        t: round(now() / 1000, 2),
        at: Date.now(),
        ...rows[0],
        remoteHeld: sandbox.state().elevenlabs.held,
      });
      await sleep(200);
    }
  })();
  // Awaited at the end; a failed sample must fail the scenario, not crash the process meanwhile.
  sampling$.catch(() => undefined);

  progress(
    `contended/${strategy}: ${p.users * p.loopsPerUser} usage loops for ${p.arrivalSeconds} s`,
  );
  const ticker = setInterval(() => {
    const last = samples[samples.length - 1];
    progress(
      `contended/${strategy}: t=${(now() / 1000).toFixed(0)} s, ${waits.length} ready answers, ` +
        `queued ${last?.queued ?? 0}, held ${last?.held ?? 0}/${p.slots}, errors ${requestErrors}`,
    );
  }, 15_000);
  const loops = Array.from({ length: p.users * p.loopsPerUser }, (_, i) =>
    loop(Math.floor(i / p.loopsPerUser), i % p.loopsPerUser),
  );
  // New sessions stop after the arrival window; whatever still waits after the drain time counts
  // as unfinished (with its wait so far).
  const looping = Promise.all(loops);
  // Awaited below; a loop that crashes (not a request error: those are counted) must fail the
  // scenario, not the whole process as an unhandled rejection while the arrival window runs.
  looping.catch(() => undefined);
  try {
    await Promise.race([sleep(p.arrivalSeconds * 1000), looping]);
    stopAt = now() + p.drainTimeoutSeconds * 1000;
    await looping;
  } finally {
    clearInterval(ticker);
    sampling = false;
    await sampling$;
    await sampler.end();
  }

  const counts = await world.db(async (c) => {
    const { rows } = await c.query<{ reclaims: number; allocations: number }>(
      `SELECT count(*) FILTER (WHERE type = 'reclaimed')::int AS reclaims,
              count(*) FILTER (WHERE type IN ('ready','adopted'))::int AS allocations FROM voice_events`,
    );
    return rows[0];
  });
  const state = sandbox.state().elevenlabs;
  const ms = waits.map((w) => w.ms);
  const perUserMeanMs = Array.from({ length: p.users }, (_, u) => {
    const mine = waits.filter((w) => w.user === u).map((w) => w.ms);
    return round(mine.reduce((a, b) => a + b, 0) / (mine.length || 1), 1);
  });
  const backlog = samples.filter((x) => x.queued > 0);
  const atProvider = providerUtilisation(samples, sandbox.heldOverTime('elevenlabs'), p.slots);
  const serviceUtilisation = backlog.length
    ? backlog.reduce((a, x) => a + Math.min(x.held, p.slots) / p.slots, 0) / backlog.length
    : 1;
  const records = sessionRecords.length || 1;
  const run: StrategyRun = {
    strategy,
    waits,
    sessionRecords,
    samples,
    timeToReadyMs: distribution(ms, 0),
    sessionTimeToReadyMs: distribution(
      sessionRecords.map((r) => r.waitMs),
      0,
    ),
    hitRatio: round(sessionRecords.filter((r) => r.hit).length / records, 4),
    clonesPerThousand: Math.round((1000 * state.createCount) / records),
    perUserMeanMs,
    jainIndex: round(jain(perUserMeanMs), 4),
    utilisationWhileBacklog: round(atProvider.utilisation, 4),
    serviceUtilisationWhileBacklog: round(serviceUtilisation, 4),
    backlogSamples: backlog.length,
    backlogSeconds: round(atProvider.seconds, 1),
    reclaims: counts.reclaims,
    voiceLimitReached: state.voiceLimitReachedCount,
    maxHeldAtProvider: state.maxHeld,
    maxOverServiceLimit: state.maxOverServiceLimit,
    creates: state.createCount,
    interruptions,
    unfinished: waits.filter((w) => w.unfinished).length,
    requestErrors,
    errors,
    sessions,
    allocations: counts.allocations,
  };
  progress(
    `contended/${strategy}: time to ready p50 ${s(run.timeToReadyMs.p50)}, p95 ${s(run.timeToReadyMs.p95)}, ` +
      `p99 ${s(run.timeToReadyMs.p99)}; utilisation while backlog ${pct(run.utilisationWhileBacklog)} at the ` +
      `provider (${pct(run.serviceUtilisationWhileBacklog)} in the service's rows); Jain ${run.jainIndex}; ` +
      `reclaims ${run.reclaims}; over the limit ${run.maxOverServiceLimit}; interruptions ${interruptions}; ` +
      `unfinished ${run.unfinished}; request errors ${requestErrors}`,
  );
  return run;
}
