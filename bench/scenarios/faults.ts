import type { ProviderName } from '../../src/config/app-config';
import type { SandboxState } from '../../src/providers/sandbox/sandbox-server';
import { ApiClient } from '../../test/support/api';
import { Processes } from '../../test/support/cluster';
import { readHandOvers } from '../../test/support/hand-over';
import { PrivatePostgres } from '../../test/support/postgres-server';
import { PrivateRedis } from '../../test/support/redis-server';
import type { ServiceProcess } from '../../test/support/service';
import { TestWorld } from '../../test/support/service';
import {
  distribution,
  onCleanup,
  progress,
  seededRandom,
  sleep,
  waitUntil,
  type Machine,
} from '../lib/common';
import type { Mode, ScenarioResult } from '../lib/report';
import { openSandbox, sandboxEnv } from '../lib/world';
import { faultChecks } from './faults/checks';
import { campaignParams, plan, PROVIDERS, providerFaults } from './faults/plan';
import { injectProcessFaults } from './faults/process-faults';

/**
 * The fault campaign (issue 14): minutes of faults of every kind on the real stack while users
 * keep activating voices, then the defects counted. The provider sandbox injects lost answers,
 * 5xx, 429 with and without Retry-After and hangs past the adapters' 30 s timeout; workers are
 * SIGKILLed and SIGSTOPped past their lease; Redis is restarted empty and Postgres restarted, both
 * private servers (test/support) so that nothing else on the machine is disturbed.
 *
 * Defects, all targets zero and counted when they happen: two live remote voices with one
 * idempotency key at any moment, voices held beyond the service's limit at any moment (the
 * sandbox's accounts allow more, so an over-claim is accepted and recorded instead of refused),
 * remote voices that no voice of ours holds once the service has settled and before any
 * reconciliation (the campaign never runs one), voices that do not become ready when activated at
 * the end, and 5xx answers to users.
 *
 * Not in the default list (`npm run bench -- --only faults`): it takes about seven minutes.
 * FAULTS_SEED replays the campaign's plan and the sandbox's dice.
 */
export async function faults(
  mode: Mode,
  machine: Machine,
  _outDir: string,
): Promise<ScenarioResult> {
  const startedAt = new Date();
  const seed = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  progress(`faults: seed ${seed} (replay with FAULTS_SEED=${seed})`);
  const { params, protection, leaseSeconds } = campaignParams(mode, seed);

  const pg = new PrivatePostgres();
  const redis = new PrivateRedis();
  await Promise.all([pg.start(), redis.start()]);
  const stopServers = onCleanup('private postgres and redis', () =>
    Promise.all([redis.stop(), pg.stop()]),
  );
  const world = new TestWorld({
    pgUrl: `postgres://postgres@127.0.0.1:${pg.port}`,
    redisUrl: redis.url,
  });
  const procs = new Processes(world);
  const disposeWorld = onCleanup('faults world', async () => {
    await procs.stopAll();
    await world.dispose();
  });
  const { sandbox, close: closeSandbox } = await openSandbox({
    seed,
    voiceLimit: params.providerLimit,
    serviceLimit: params.serviceLimit,
    latencyMs: 100,
  });
  const env = {
    ...sandboxEnv(sandbox),
    ELEVENLABS_SLOT_LIMIT: String(params.serviceLimit.elevenlabs),
    CARTESIA_SLOT_LIMIT: String(params.serviceLimit.cartesia),
    ...params.env,
  };

  const api = await procs.start({ ...env, APP_ROLES: 'api,scheduler' });
  const workers: ServiceProcess[] = [];
  for (let i = 0; i < params.workers; i++)
    workers.push(await procs.start({ ...env, APP_ROLES: 'worker' }));

  // Users: every answer is counted; a 5xx is a defect whenever it comes.
  const answers = { total: 0, byStatus: {} as Record<string, number> };
  const serverErrors: Array<{ atMs: number; status: number; path: string }> = [];
  const t0 = Date.now();
  const record = (status: number, path: string) => {
    answers.total++;
    answers.byStatus[status] = (answers.byStatus[status] ?? 0) + 1;
    if (status >= 500) serverErrors.push({ atMs: Date.now() - t0, status, path });
  };
  const users = Array.from({ length: params.users }, (_, i) => new ApiClient(api.url, `u${i}`));
  const voices: { client: ApiClient; id: string }[] = [];
  let n = 0;
  const upload = async (provider: ProviderName) => {
    const client = users[n % users.length];
    const res = await client.upload({ name: `v${n++}`, provider });
    record(res.status, 'POST /v1/voices');
    if (res.status === 202) voices.push({ client, id: res.body.id as string });
  };
  for (const p of PROVIDERS) for (let i = 0; i < params.voices[p]; i++) await upload(p);
  progress(`faults: ${voices.length} voices uploaded; ${params.chaosSeconds} s of faults`);

  // The chaos: provider faults switching every segment, process faults on their plan, and
  // users activating voices (a reclaimed one queues again) and uploading new ones throughout.
  const chaosMs = params.chaosSeconds * 1000;
  const chaosStart = Date.now();
  let chaos = true;
  const rateLimitBy = { withRetryAfter: 0, withoutRetryAfter: 0 };
  const rateLimits = (s: SandboxState) =>
    PROVIDERS.reduce((a, p) => a + s[p].faultsInjected.rateLimit, 0);
  const segments = (async () => {
    let retryAfter = true;
    while (chaos) {
      sandbox.setConfig({
        faults: {
          elevenlabs: providerFaults(retryAfter, params.hangMs),
          cartesia: providerFaults(retryAfter, params.hangMs),
        },
      });
      const before = rateLimits(sandbox.state());
      // At least one pause per segment, or the loop would spin once the campaign's time is up.
      const end = Date.now() + params.faultSegmentSeconds * 1000;
      do await sleep(100);
      while (chaos && Date.now() < end);
      rateLimitBy[retryAfter ? 'withRetryAfter' : 'withoutRetryAfter'] +=
        rateLimits(sandbox.state()) - before;
      retryAfter = !retryAfter;
    }
  })();
  const activations = Array.from({ length: 4 }, async () => {
    while (chaos) {
      const { client, id } = voices[Math.floor(random() * voices.length)];
      const res = await client.request('POST', `/v1/voices/${id}/activate`).catch(() => null);
      record(res?.status ?? 599, 'POST /v1/voices/{id}/activate');
      await sleep(100 + random() * 150);
    }
  });
  const uploads = (async () => {
    while (chaos) {
      await sleep(5_000 + random() * 5_000);
      if (chaos) await upload(random() < 0.7 ? 'elevenlabs' : 'cartesia').catch(() => undefined);
    }
  })();

  const { processFaults, starting } = await injectProcessFaults({
    plan: plan(random, chaosMs),
    chaosStart,
    random,
    workers,
    procs,
    env,
    redis,
    pg,
    leaseSeconds,
  });
  const left = chaosStart + chaosMs - Date.now();
  if (left > 0) await sleep(left);
  chaos = false;
  await Promise.all([segments, uploads, ...activations]);
  await Promise.all(starting);
  await sleep((leaseSeconds + 4) * 1000);
  for (const w of workers) w.signal('SIGCONT');
  const chaosSeconds = (Date.now() - chaosStart) / 1000;

  // Faults off. Every voice must become ready when its app activates it (a 202 says come back).
  sandbox.setConfig({ latencyMs: 0, faults: { elevenlabs: {}, cartesia: {} } });
  const settleStart = Date.now();
  const finals = await Promise.all(
    voices.map(async ({ client, id }) => {
      const deadline = Date.now() + 180_000;
      for (;;) {
        const res = await client
          .request('POST', `/v1/voices/${id}/activate?waitSeconds=10`)
          .catch(() => ({ status: 599, body: null }));
        record(res.status, 'POST /v1/voices/{id}/activate (final)');
        if (res.status === 200 || res.status >= 500 || Date.now() > deadline)
          return { id, status: res.status, voice: res.body as { status?: string } };
      }
    }),
  );
  const notReady = finals.filter((f) => f.status !== 200);

  // Settled: nothing in flight, no clean-up pending. Then every remote voice carrying our key
  // must be one a voice of ours holds; reconciliation never ran, so none was deleted for us.
  const held = await waitUntil(
    'the service settled',
    () =>
      world.db(async (c) => {
        const busy = await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM voices
            WHERE status IN ('allocating', 'reclaiming') OR remote_cleanup_pending`,
        );
        if (busy.rows[0].n) return undefined;
        const r = await c.query<{ remote_voice_id: string }>(
          `SELECT remote_voice_id FROM voices WHERE remote_voice_id IS NOT NULL`,
        );
        return new Set(r.rows.map((x) => x.remote_voice_id));
      }),
    120_000,
  ).catch(() => null);
  const settleSeconds = (Date.now() - settleStart) / 1000;
  const state = sandbox.state();
  const orphans = PROVIDERS.flatMap((p) =>
    state[p].voices
      .filter((v) => !v.foreign && v.idempotencyKey !== null && !(held?.has(v.id) ?? false))
      .map((v) => ({ provider: p, id: v.id, key: v.idempotencyKey })),
  );
  const handOvers = await world.db((c) => readHandOvers(c, 'elevenlabs', protection));

  const providerFaultsInjected = {
    lostAnswer: 0,
    error5xx: 0,
    rateLimitWithRetryAfter: rateLimitBy.withRetryAfter,
    rateLimitWithoutRetryAfter: rateLimitBy.withoutRetryAfter,
    hangPastTimeout: 0,
  };
  for (const p of PROVIDERS) {
    providerFaultsInjected.lostAnswer += state[p].faultsInjected.lostAnswer;
    providerFaultsInjected.error5xx += state[p].faultsInjected.error5xx;
    providerFaultsInjected.hangPastTimeout += state[p].faultsInjected.timeout;
  }
  const faultsByKind = { ...providerFaultsInjected, ...processFaults };
  const totalFaults = Object.values(faultsByKind).reduce((a, b) => a + b, 0);
  const defects = {
    duplicatesEverAlive: PROVIDERS.reduce((a, p) => a + state[p].duplicatesEverAlive.length, 0),
    maxOverServiceLimit: Math.max(...PROVIDERS.map((p) => state[p].maxOverServiceLimit)),
    orphansBeforeReconciliation: held ? orphans.length : Number.NaN,
    voicesNotReadyAtEnd: notReady.length,
    serverErrors: serverErrors.length,
  };
  const reclaimLate = handOvers.reclaims.map((r) => Math.max(0, r.at - r.reclaimableAt));
  const refill = handOvers.refills.map((r) => r.claimedAt - r.freedAt);

  await disposeWorld();
  await closeSandbox();
  await stopServers();
  const checks = faultChecks(mode, faultsByKind, totalFaults, defects, reclaimLate, refill);
  return {
    scenario: 'faults',
    mode,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine,
    params: params as unknown as Record<string, unknown>,
    results: {
      chaosSeconds: Math.round(chaosSeconds),
      settleSeconds: Math.round(settleSeconds),
      faultsByKind,
      totalFaults,
      defects,
      answers,
      serverErrors: serverErrors.slice(0, 50),
      notReady: notReady.slice(0, 50),
      orphans: orphans.slice(0, 50),
      voices: voices.length,
      handOvers: {
        reclaims: handOvers.reclaims.length,
        reclaimLateMs: distribution(reclaimLate, 0),
        refills: handOvers.refills.length,
        refillMs: distribution(refill, 0),
      },
      provider: Object.fromEntries(
        PROVIDERS.map((p) => [
          p,
          {
            createAttempts: state[p].createAttempts,
            createCount: state[p].createCount,
            deleteCount: state[p].deleteCount,
            maxHeld: state[p].maxHeld,
            voiceLimitReachedCount: state[p].voiceLimitReachedCount,
            requests: state[p].requests,
          },
        ]),
      ),
    },
    checks,
  };
}
