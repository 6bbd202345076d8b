import { seededRandom } from '../src/common/seeded-random';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { Processes, until } from './support/cluster';
import { PrivatePostgres } from './support/postgres-server';
import { PrivateRedis } from './support/redis-server';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A slot freed by reclaim must be cloned into within this, when hand-over is event-driven. */
const HANDOVER_MS = 2_000;
/** After a fault is over, hand-over must be event-driven again within this. */
const RECOVERY_MS = 10_000;
/** Hand-overs observed after each recovery, every one of them within HANDOVER_MS. */
const HANDOVERS_MEASURED = 4;

interface HandOver {
  /** When the reclaimed voice's slot was freed. */
  freedAt: number;
  /** When the next voice became ready in it. */
  readyAt: number;
}

/**
 * Recovery on the real stack (ARCHITECTURE invariant 10): one api+scheduler process and two
 * workers on their own Postgres cluster and Redis, started here on free ports so that restarting
 * them disturbs no other suite. A backlog waits for a small pool while users keep activating
 * voices, so slots change hands all the time: each hand-over is a reclaim at the end of a lease
 * (the reclaim wake-up timer) followed by a dispatch into the freed slot (the reclaim job's
 * nudge). The scheduler's tick is a minute, so it cannot be what serves them. Then, in turn:
 * Redis restarted empty, Postgres restarted, a worker killed mid-clone, a worker frozen past its
 * lease. After each, hand-over must be event-driven again within seconds, and at the end every
 * voice must become ready when activated.
 *
 * Seeded (RECOVERY_SEED replays a run): the seed picks the activations and the sandbox's dice.
 */
describe('recovery after restarts, crashes and freezes', () => {
  const seed = Number(process.env.RECOVERY_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  const pg = new PrivatePostgres();
  const redis = new PrivateRedis();
  let world: TestWorld;
  let procs: Processes;
  let sandbox: SandboxHandle;
  let api: ServiceProcess;
  const workers: ServiceProcess[] = [];
  let env: Record<string, string>;
  const slots = 3;

  beforeAll(async () => {
    process.stdout.write(`recovery seed: ${seed} (rerun with RECOVERY_SEED=${seed})\n`);
    await Promise.all([pg.start(), redis.start()]);
    world = new TestWorld({
      pgUrl: `postgres://postgres@127.0.0.1:${pg.port}`,
      redisUrl: redis.url,
    });
    procs = new Processes(world);
    sandbox = await startSandbox({
      port: 0,
      voiceLimit: { elevenlabs: slots },
      latencyMs: 150,
      seed,
    });
    env = {
      ...sandboxEnv(sandbox),
      SCHEDULER_TICK_SECONDS: '60',
      ALLOCATION_LEASE_SECONDS: '4',
      ACTIVATION_LEASE_SECONDS: '1',
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      USER_MAX_PENDING: '50',
      LOG_LEVEL: 'info',
    };
    api = await procs.start({ ...env, APP_ROLES: 'api,scheduler' });
    for (let i = 0; i < 2; i++) workers.push(await procs.start({ ...env, APP_ROLES: 'worker' }));
  }, 120_000);

  afterAll(async () => {
    if (process.env.RECOVERY_LOG_DIR) {
      const { writeFileSync } = await import('node:fs');
      for (const [i, p] of [api, ...workers].entries())
        writeFileSync(`${process.env.RECOVERY_LOG_DIR}/p${i}.log`, p.output);
    }
    for (const w of workers) w.signal('SIGCONT');
    await procs?.stopAll();
    await world?.dispose().catch(() => undefined);
    await sandbox?.close();
    await Promise.all([redis.stop(), pg.stop()]);
  }, 60_000);

  /** Hand-overs on the pool since `since`: each reclaimed slot paired with the next ready. */
  const handOvers = (since: number): Promise<HandOver[]> =>
    world.db(async (c) => {
      const r = await c.query<{ type: string; at: Date }>(
        `SELECT type, created_at AS at FROM voice_events
          WHERE type IN ('reclaimed', 'ready', 'adopted') AND created_at >= to_timestamp($1 / 1000.0)
          ORDER BY created_at, id`,
        [since],
      );
      const freed: number[] = [];
      const out: HandOver[] = [];
      for (const e of r.rows) {
        if (e.type === 'reclaimed') freed.push(e.at.getTime());
        else if (freed.length) out.push({ freedAt: freed.shift()!, readyAt: e.at.getTime() });
      }
      return out;
    });

  /**
   * Waits for HANDOVERS_MEASURED hand-overs whose slot was freed after `recoveredAt + grace` and
   * returns them with every hand-over of the recovery window; fails if hand-over has not come back.
   */
  const expectEventDriven = async (what: string, recoveredAt: number): Promise<void> => {
    const from = recoveredAt + RECOVERY_MS;
    const measured = await until(
      `${HANDOVERS_MEASURED} hand-overs after ${what}`,
      async () => {
        const all = await handOvers(from);
        return all.length >= HANDOVERS_MEASURED ? all.slice(0, HANDOVERS_MEASURED) : null;
      },
      RECOVERY_MS + 20_000,
      250,
    ).catch(async (err: Error) => {
      const seen = await handOvers(recoveredAt);
      throw new Error(`${err.message}; hand-overs since recovery: ${JSON.stringify(seen)}`);
    });
    const gaps = measured.map((h) => h.readyAt - h.freedAt);
    process.stdout.write(`${what}: hand-over gaps ${JSON.stringify(gaps)} ms\n`);
    expect(gaps.filter((g) => g > HANDOVER_MS)).toEqual([]);
  };

  it('returns to event-driven hand-over after each fault', async () => {
    const users = ['ana', 'ben', 'cem', 'dan'].map((u) => new ApiClient(api.url, u));
    const voices: { client: ApiClient; id: string }[] = [];
    for (let i = 0; i < 12; i++) {
      const client = users[i % users.length];
      const res = await client.upload({ name: `v${i}`, provider: 'elevenlabs' });
      expect(res.status).toBe(202);
      voices.push({ client, id: res.body.id as string });
    }

    // Users keep activating voices: a reclaimed one queues again, so the backlog never drains.
    let churning = true;
    const churn = (async () => {
      while (churning) {
        const { client, id } = voices[Math.floor(random() * voices.length)];
        await client.request('POST', `/v1/voices/${id}/activate`).catch(() => undefined);
        await sleep(150 + random() * 150);
      }
    })();

    await expectEventDriven('start', Date.now() - RECOVERY_MS);

    await redis.restart();
    await expectEventDriven('Redis restarted empty', Date.now());

    await pg.restart();
    await expectEventDriven('Postgres restarted', Date.now());

    // Mid-clone: creates take long for a moment, so the worker dies with calls in flight.
    sandbox.setConfig({ latencyMs: 1_500 });
    await sleep(700);
    const killed = workers.shift()!;
    await killed.stop('SIGKILL');
    sandbox.setConfig({ latencyMs: 150 });
    const killedAt = Date.now();
    const replacement = procs.start({ ...env, APP_ROLES: 'worker' });
    await expectEventDriven('worker killed mid-clone', killedAt);
    workers.push(await replacement);

    // Frozen mid-clone past its lease (4 s), then resumed: a stale worker.
    sandbox.setConfig({ latencyMs: 1_500 });
    await sleep(700);
    const frozen = workers[0];
    frozen.signal('SIGSTOP');
    sandbox.setConfig({ latencyMs: 150 });
    await sleep(6_000);
    frozen.signal('SIGCONT');
    await expectEventDriven('worker frozen past its lease', Date.now());

    churning = false;
    await churn;

    // Every voice is served when activated: the ready ones at once, the others once reclaim
    // makes room for them.
    // An app activates until it gets the voice (a 202 says to come back); each must get it.
    const answers = await Promise.all(
      voices.map(async ({ client, id }) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const res = await client.request('POST', `/v1/voices/${id}/activate?waitSeconds=10`);
          if (res.status !== 202 || Date.now() > deadline) return res;
        }
      }),
    );
    const notReady = answers
      .map((a, i) => ({ id: voices[i].id, status: a.status, voice: a.body as { status?: string } }))
      .filter((a) => a.status !== 200);
    if (notReady.length) {
      const recent = await world.db((c) =>
        c.query(
          `SELECT e.created_at, e.voice_id, e.type, e.reason, v.status FROM voice_events e JOIN voices v ON v.id = e.voice_id
            WHERE e.created_at > now() - interval '40 seconds' ORDER BY e.created_at, e.id`,
        ),
      );
      process.stdout.write(`final events: ${JSON.stringify(recent.rows, null, 1)}\n`);
    }
    expect(notReady.map((a) => `${a.id}: ${a.status} ${a.voice.status}`)).toEqual([]);
    for (const a of answers)
      expect((a.body as { remoteVoiceId: string }).remoteVoiceId).toBeTruthy();
  }, 300_000);
});
