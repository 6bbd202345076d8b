import { seededRandom } from '../src/common/seeded-random';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { Processes } from './support/cluster';
import { eventDrivenCheck } from './support/event-driven';
import { readHandOvers, type Hold, type Protection } from './support/hand-over';
import { PrivatePostgres } from './support/postgres-server';
import { PrivateRedis } from './support/redis-server';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The scheduler's tick, longer than the whole test: every hand-over seen here is event-driven
 * (the reclaim wake-up at the end of a voice's protection, the dispatch a freed slot nudges, the
 * lease-end sweep), so a path that stays silent after a fault shows up as a slot that is never
 * handed over, not as one served at the next tick.
 */
const TICK_SECONDS = 3_600;
/** On a pool of 3: a backlog of 27 outlasts a phase's hand-overs, refilled before each fault. */
const VOICES = 30;

/**
 * Recovery on the real stack (ARCHITECTURE invariant 10): an api, a scheduler and two workers,
 * each its own process, on their own Postgres cluster and Redis, started here on free ports so
 * that restarting them disturbs no other suite. A standing backlog waits for a pool of 3 while
 * users keep using their ready voices, so slots change hands all the time, and only through the
 * event-driven paths: the reclaim wake-up at the end of a voice's protection and the dispatch its
 * freed slot nudges. (Users come back to reclaimed voices only between phases: a requeue nudges
 * dispatch, which runs reclaim, which would mask a wake-up that a fault broke. That is how the
 * incident of issue 14 looked: a backlog of 11, served one voice per tick after Postgres
 * restarted.) Then, in turn: Redis restarted empty, Postgres restarted, a worker killed mid-clone,
 * a worker frozen past its lease. After each, every slot that becomes reclaimable must be
 * reclaimed at once (by 10 s after the fault at the latest), every freed slot claimed within 2 s,
 * and no claim or reclaim hold its slot past its lease; at the end every voice becomes ready when
 * activated.
 *
 * The delays come from Postgres's event timestamps (test/support/hand-over.ts), not from when
 * this test looks. Seeded (RECOVERY_SEED replays a run): the seed picks the activations and the
 * sandbox's dice.
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
  let scheduler: ServiceProcess;
  const workers: ServiceProcess[] = [];
  let env: Record<string, string>;
  const slots = 3;
  const protection: Protection = {
    minIdleMs: 1_000,
    minResidencyMs: 2_000,
    activationLeaseMs: 1_000,
    allocationLeaseMs: 4_000,
  };
  /**
   * Reclaims a killed or frozen worker was running. Bull leaves such a job active until its lock
   * lapses (lockDuration 30 s), and the lease-end sweep does not take it over, so these voices
   * hold their slot for up to half a minute: a known gap, reported below rather than asserted.
   */
  const reclaimsOfLostWorkers = new Map<string, number>();
  const ofLostWorker = (h: Hold) =>
    h.kind === 'reclaim' && h.at <= (reclaimsOfLostWorkers.get(h.voiceId) ?? -Infinity);
  /** The users' activation loop runs while this is true; afterAll ends it if a check failed. */
  let churning = false;

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
      // More than the service's limit, so an over-claim would be accepted and recorded.
      voiceLimit: { elevenlabs: slots + 3 },
      serviceLimit: { elevenlabs: slots },
      latencyMs: 150,
      seed,
    });
    env = {
      ...sandboxEnv(sandbox),
      ELEVENLABS_SLOT_LIMIT: String(slots),
      SCHEDULER_TICK_SECONDS: String(TICK_SECONDS),
      RECONCILE_INTERVAL_SECONDS: String(TICK_SECONDS),
      ALLOCATION_LEASE_SECONDS: String(protection.allocationLeaseMs / 1000),
      ACTIVATION_LEASE_SECONDS: String(protection.activationLeaseMs / 1000),
      RECLAIM_MIN_IDLE_SECONDS: String(protection.minIdleMs / 1000),
      RECLAIM_MIN_RESIDENCY_SECONDS: String(protection.minResidencyMs / 1000),
      USER_MAX_PENDING: '50',
      LOG_LEVEL: 'info',
    };
    // Deployed as docker-compose does: the scheduler on its own serves no user, so nothing but
    // its own reconnection brings its notification connection back after Postgres restarts.
    api = await procs.start({ ...env, APP_ROLES: 'api' });
    scheduler = await procs.start({ ...env, APP_ROLES: 'scheduler' });
    for (let i = 0; i < 2; i++) workers.push(await procs.start({ ...env, APP_ROLES: 'worker' }));
  }, 120_000);

  afterAll(async () => {
    churning = false;
    if (process.env.RECOVERY_LOG_DIR) {
      const { writeFileSync } = await import('node:fs');
      for (const [i, p] of [api, scheduler, ...workers].entries())
        writeFileSync(`${process.env.RECOVERY_LOG_DIR}/p${i}.log`, p.output);
      const events = await world.db((c) =>
        c.query(`SELECT created_at, voice_id, type, reason, from_status, to_status, metadata
                   FROM voice_events ORDER BY created_at, id`),
      );
      writeFileSync(`${process.env.RECOVERY_LOG_DIR}/events.json`, JSON.stringify(events.rows));
    }
    for (const w of workers) w.signal('SIGCONT');
    await procs?.stopAll();
    await world?.dispose().catch(() => undefined);
    await sandbox?.close();
    await Promise.all([redis.stop(), pg.stop()]);
  }, 60_000);

  const expectEventDriven = eventDrivenCheck(() => world, protection, ofLostWorker);

  /** Makes provider calls slow for a moment, so a worker is caught with calls in flight. */
  const midCall = async () => {
    sandbox.setConfig({ latencyMs: 1_500 });
    await sleep(700);
  };
  /** Right after a worker is killed or frozen: the reclaims that may be its. */
  const noteReclaimsInFlight = async () => {
    const at = Date.now();
    const inFlight = await world.db((c) =>
      c.query<{ id: string }>(`SELECT id FROM voices WHERE status = 'reclaiming'`),
    );
    for (const r of inFlight.rows) reclaimsOfLostWorkers.set(r.id, at);
  };

  it('returns to event-driven hand-over after each fault', async () => {
    const users = ['ana', 'ben', 'cem', 'dan'].map((u) => new ApiClient(api.url, u));
    const voices: { client: ApiClient; id: string }[] = [];
    for (let i = 0; i < VOICES; i++) {
      const client = users[i % users.length];
      const res = await client.upload({ name: `v${i}`, provider: 'elevenlabs' });
      expect(res.status).toBe(202);
      voices.push({ client, id: res.body.id as string });
    }

    /**
     * Users come back to the voices that were reclaimed, so the backlog stands again before each
     * fault. Only here: a voice queued again nudges dispatch, whose full pool runs reclaim, which
     * would re-arm a wake-up that the fault broke, and hide it.
     */
    const refillBacklog = async () => {
      for (const { client, id } of voices)
        if ((await client.get(id)).status === 'reclaimed')
          await client.request('POST', `/v1/voices/${id}/activate`);
    };
    // Meanwhile users keep using their ready voices (each activation renews its lease) and ask
    // after their queued ones; the standing backlog can only be served by the event-driven paths.
    churning = true;
    const churn = (async () => {
      while (churning) {
        const { client, id } = voices[Math.floor(random() * voices.length)];
        const status = (await client.get(id).catch(() => null))?.status;
        if (status === 'ready' || status === 'queued')
          await client.request('POST', `/v1/voices/${id}/activate`).catch(() => undefined);
        await sleep(100 + random() * 200);
      }
    })();

    await expectEventDriven('start', Date.now());

    await refillBacklog();
    await redis.restart();
    await expectEventDriven('Redis restarted empty', Date.now());

    await refillBacklog();
    await pg.restart();
    await expectEventDriven('Postgres restarted', Date.now());

    await refillBacklog();
    await midCall();
    const killed = workers.shift()!;
    await killed.stop('SIGKILL');
    await noteReclaimsInFlight();
    sandbox.setConfig({ latencyMs: 150 });
    const killedAt = Date.now();
    const replacement = procs.start({ ...env, APP_ROLES: 'worker' });
    await expectEventDriven('worker killed mid-clone', killedAt);
    workers.push(await replacement);

    // Frozen mid-call past its lease (4 s), then resumed: a stale worker. The clones it held are
    // swept when their lease ends; its late transitions are refused by the fencing token.
    await refillBacklog();
    await midCall();
    const frozen = workers[0];
    frozen.signal('SIGSTOP');
    await noteReclaimsInFlight();
    const frozenAt = Date.now();
    sandbox.setConfig({ latencyMs: 150 });
    await sleep(6_000);
    frozen.signal('SIGCONT');
    await expectEventDriven('worker frozen past its lease', frozenAt);

    churning = false;
    await churn;

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
    expect(notReady.map((a) => `${a.id}: ${a.status} ${a.voice.status}`)).toEqual([]);
    for (const a of answers)
      expect((a.body as { remoteVoiceId: string }).remoteVoiceId).toBeTruthy();

    const lost = await world.db((c) => readHandOvers(c, 'elevenlabs', protection));
    const lostHolds = lost.holds
      .filter(ofLostWorker)
      .map((x) => (x.endedAt === null ? null : x.endedAt - x.at));
    process.stdout.write(
      `reclaims in flight at the kill and the freeze, ms held: ${JSON.stringify(lostHolds)}\n`,
    );

    const state = sandbox.state().elevenlabs;
    expect({
      over: state.maxOverServiceLimit,
      duplicates: state.duplicatesEverAlive,
    }).toEqual({ over: 0, duplicates: [] });
  }, 240_000);
});
