import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { logLines, Processes, runBuiltScript, sandboxEnv, until } from './support/cluster';
import { ServiceProcess, TestWorld } from './support/service';

interface EventRow {
  voice_id: string;
  type: string;
  token: string | null;
}

interface TickRow {
  name: string;
  runs: string;
}

/** Periods of the scheduler's tasks in ticks (src/scheduler/scheduler.service.ts). */
const TASK_PERIOD_TICKS: Record<string, number> = {
  dispatch: 1,
  'sweep-allocations': 1,
  'sweep-cleanups': 3,
  'sweep-pending': 3,
  'sweep-orphan-samples': 6,
  reclaim: 1,
};

/**
 * The deployment's shape on one machine: migrations as their own step, then one api, two
 * schedulers and three workers (one per provider and one for both) as separate processes on one
 * Postgres, one Redis, one sample folder and one shared provider sandbox with tiny accounts.
 * Twenty voices from five users compete for 3 + 2 slots, so claims, reclaims and timed work run
 * concurrently in every process; the invariants must hold anyway.
 */
describe('several replicas of every role', () => {
  const world = new TestWorld();
  const procs = new Processes(world);
  let sandbox: SandboxHandle;
  let api: ServiceProcess;
  let schedulers: ServiceProcess[];
  let workers: { elevenlabs: ServiceProcess; cartesia: ServiceProcess; both: ServiceProcess };

  beforeAll(async () => {
    sandbox = await startSandbox({
      port: 0,
      voiceLimit: { elevenlabs: 3, cartesia: 2 },
      latencyMs: 50,
    });
    const env = {
      ...sandboxEnv(sandbox),
      // ElevenLabs' limit is read from the account (3); Cartesia does not report one.
      CARTESIA_SLOT_LIMIT: '2',
      SCHEDULER_TICK_SECONDS: '1',
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      ACTIVATION_LEASE_SECONDS: '2',
      DB_MIGRATE: 'off',
      LOG_LEVEL: 'info',
    };
    // Production order: migrate once, then start the replicas with DB_MIGRATE=off.
    const migrate = await runBuiltScript('database/migrate.js', world.env());
    expect(migrate).toMatchObject({ code: 0 });

    const started = await Promise.all([
      procs.start({ ...env, APP_ROLES: 'api' }),
      procs.start({ ...env, APP_ROLES: 'scheduler' }),
      procs.start({ ...env, APP_ROLES: 'scheduler' }),
      procs.start({ ...env, APP_ROLES: 'worker', WORKER_PROVIDERS: 'elevenlabs' }),
      procs.start({ ...env, APP_ROLES: 'worker', WORKER_PROVIDERS: 'cartesia' }),
      procs.start({ ...env, APP_ROLES: 'worker' }),
    ]);
    [api] = started;
    schedulers = started.slice(1, 3);
    workers = { elevenlabs: started[3], cartesia: started[4], both: started[5] };
  }, 120_000);

  afterAll(async () => {
    await procs.stopAll();
    await world.dispose();
    await sandbox?.close();
  }, 45_000);

  const ticks = () =>
    world.db(async (c) => {
      const r = await c.query<TickRow>(`SELECT name, runs FROM scheduler_ticks`);
      return new Map(r.rows.map((t) => [t.name, Number(t.runs)]));
    });

  const statuses = (ids: string[]) =>
    world.db(async (c) => {
      const r = await c.query<{ id: string; provider: string; status: string; remote: string }>(
        `SELECT id, provider, status, remote_voice_id AS remote FROM voices WHERE id = ANY($1::uuid[])`,
        [ids],
      );
      return r.rows;
    });

  /** Every voice served (it was ready at least once) and now ready or reclaimed. */
  const settled = (ids: string[]) =>
    until(
      'every voice served and settled',
      async () => {
        const rows = await statuses(ids);
        const served = await world.db(async (c) => {
          const r = await c.query<{ n: number }>(
            `SELECT count(DISTINCT voice_id)::int AS n FROM voice_events
              WHERE voice_id = ANY($1::uuid[]) AND type IN ('ready', 'adopted')`,
            [ids],
          );
          return r.rows[0].n;
        });
        const done = rows.every((v) => v.status === 'ready' || v.status === 'reclaimed');
        return done && served === ids.length ? rows : null;
      },
      45_000,
      200,
    );

  it('serves every voice once per claim, within the accounts, with timed work once per tick', async () => {
    const before = await ticks();
    const t0 = Date.now();

    const ids: string[] = [];
    const users = ['u1', 'u2', 'u3', 'u4', 'u5'].map((u) => new ApiClient(api.url, u));
    for (let i = 0; i < 4; i++) {
      for (const [n, user] of users.entries()) {
        // 14 for ElevenLabs (3 slots), 6 for Cartesia (2 slots).
        const provider = (i * users.length + n) % 10 < 7 ? 'elevenlabs' : 'cartesia';
        const res = await user.upload({ name: `${user.userId} ${i}`, provider });
        expect(res.status).toBe(202);
        ids.push(res.body.id);
      }
    }
    await settled(ids);

    // A second round: activating reclaimed voices queues them again, and they are served again
    // by reclaiming others; every claim cycle must stay single.
    const reclaimed = (await statuses(ids)).filter((v) => v.status === 'reclaimed').slice(0, 4);
    expect(reclaimed.length).toBeGreaterThan(0);
    for (const v of reclaimed) {
      const owner = users[ids.indexOf(v.id) % users.length]; // uploaded round robin
      const res = await owner.request('POST', `/v1/voices/${v.id}/activate`);
      expect([200, 202]).toContain(res.status);
    }
    const final = await settled(ids);
    const after = await ticks();
    const seconds = (Date.now() - t0) / 1000;

    // Capacity: never more remote voices than the accounts hold, never refused for a full account.
    const state = sandbox.state();
    expect(state.elevenlabs.maxHeld).toBeLessThanOrEqual(3);
    expect(state.cartesia.maxHeld).toBeLessThanOrEqual(2);
    expect(state.elevenlabs.voiceLimitReachedCount).toBe(0);
    expect(state.cartesia.voiceLimitReachedCount).toBe(0);
    expect(state.elevenlabs.duplicateKeys).toEqual([]);
    expect(state.cartesia.duplicateKeys).toEqual([]);

    // One remote voice per voice: the ready ones are at the provider exactly once, the reclaimed
    // ones are gone from it.
    const remote = [...state.elevenlabs.voices, ...state.cartesia.voices].map((v) => v.id);
    for (const v of final) {
      if (v.status === 'ready') expect(remote.filter((r) => r === v.remote)).toHaveLength(1);
      else expect(v.remote).toBeNull();
    }
    expect(remote).toHaveLength(final.filter((v) => v.status === 'ready').length);

    // Nothing dispatched twice: one claim per (voice, fencing token), one create per claim, at
    // most one ready per claim and at most one reclaim per ready cycle.
    const events = await world.db(async (c) => {
      const r = await c.query<EventRow>(
        `SELECT voice_id, type, metadata->>'fencingToken' AS token FROM voice_events
          WHERE voice_id = ANY($1::uuid[]) ORDER BY id`,
        [ids],
      );
      return r.rows;
    });
    const claims = events.filter((e) => e.type === 'claimed');
    expect(claims.every((e) => e.token !== null)).toBe(true);
    const perClaim = new Map<string, number>();
    for (const e of claims) {
      const key = `${e.voice_id}:${e.token}`;
      perClaim.set(key, (perClaim.get(key) ?? 0) + 1);
    }
    expect([...perClaim.values()].filter((n) => n !== 1)).toEqual([]);
    const readies = events.filter((e) => e.type === 'ready' || e.type === 'adopted');
    expect(readies.length).toBeGreaterThanOrEqual(ids.length + reclaimed.length);
    expect(state.elevenlabs.createCount + state.cartesia.createCount).toBe(readies.length);
    expect(state.elevenlabs.deleteCount + state.cartesia.deleteCount).toBe(
      events.filter((e) => e.type === 'reclaimed').length,
    );
    const violations: string[] = [];
    for (const id of ids) {
      // Within one claim: one ready; within one ready cycle: one reclaiming and one reclaimed.
      let readyInClaim = 0;
      let reclaiming = 0;
      let reclaimedInCycle = 0;
      for (const { type } of events.filter((e) => e.voice_id === id)) {
        if (type === 'claimed') readyInClaim = 0;
        if (type === 'ready' || type === 'adopted') {
          readyInClaim++;
          reclaiming = reclaimedInCycle = 0;
        }
        if (type === 'reclaiming') reclaiming++;
        if (type === 'reclaimed') reclaimedInCycle++;
        if (readyInClaim > 1) violations.push(`${id}: ready twice in one claim`);
        if (reclaiming > 1 || reclaimedInCycle > 1) violations.push(`${id}: reclaimed twice`);
      }
    }
    expect(violations).toEqual([]);

    // Timed work once per tick across both schedulers: a task claims its tick only 0.9 periods
    // after the last run, so over N seconds it runs at most N / (0.9 period) + 1 times; two
    // schedulers each running it would come close to 2N / period.
    const overRun: string[] = [];
    for (const [name, runs] of after) {
      const delta = runs - (before.get(name) ?? 0);
      const max = Math.floor(seconds / (0.9 * (TASK_PERIOD_TICKS[name] ?? 1))) + 1;
      if (delta > max) overRun.push(`${name}: ${delta} runs in ${seconds} s, at most ${max}`);
    }
    expect(overRun).toEqual([]);
    // ...and it does run: the per-tick tasks ran nearly every second.
    const dispatchRuns = (after.get('dispatch') ?? 0) - (before.get('dispatch') ?? 0);
    expect(dispatchRuns).toBeGreaterThanOrEqual(Math.floor(seconds * 0.6));
    // Both schedulers ran their timers all along.
    for (const s of schedulers) expect(logLines(s.output, 'scheduler started')).toHaveLength(1);

    // WORKER_PROVIDERS routes allocation: each provider's worker cloned only its provider's voices.
    const cloned = (p: ServiceProcess) =>
      logLines(p.output, 'voice ready').map((l) => l.provider as string);
    const all = Object.values(workers).flatMap(cloned);
    expect(all).toHaveLength(readies.length);
    expect(cloned(workers.elevenlabs).filter((p) => p !== 'elevenlabs')).toEqual([]);
    expect(cloned(workers.cartesia).filter((p) => p !== 'cartesia')).toEqual([]);
  }, 120_000);
});
