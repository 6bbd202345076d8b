import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import type { SandboxHandle } from '../../../src/providers/sandbox/sandbox-server';
import { ApiClient } from '../../../test/support/api';
import type { ServiceProcess, TestWorld } from '../../../test/support/service';
import { makeWav } from '../../../test/support/wav';
import { distribution, jain, progress, round, sleep } from '../../lib/common';
import {
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  waitForAccountLimit,
} from '../../lib/world';
import { pct, providerUtilisation, s } from './measure';
import {
  sessionsOf,
  type Params,
  type Session,
  type SessionRecord,
  type Sample,
  type Strategy,
  type StrategyRun,
  type Wait,
} from './workload';

export async function runStrategy(strategy: Strategy, p: Params): Promise<StrategyRun> {
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
