import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import type { components } from './generated/openapi';
import { ApiClient, type VoiceJson } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { type ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';

// The API's own shapes, from the committed OpenAPI document.
type Churn = components['schemas']['Churn'];
type QueueJson = NonNullable<VoiceJson['queue']>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function churn(service: ServiceProcess): Promise<Churn> {
  const res = await fetch(`${service.url}/v1/providers`, {
    headers: { authorization: `Bearer ${makeToken('ops', 'admin')}` },
  });
  const body = (await res.json()) as components['schemas']['ProviderStatus'][];
  const el = body.find((p) => p.provider === 'elevenlabs');
  if (!el) throw new Error('no elevenlabs in GET /v1/providers');
  return el.churn;
}

async function until<T>(what: string, fn: () => Promise<T | null | false>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Users speaking with their voices in sessions: a few activations of one voice, then a pause. */
function startActivations(clients: ApiClient[], ids: Map<ApiClient, string[]>) {
  let running = true;
  const loops = clients.map(async (client, u) => {
    let turn = u;
    while (running) {
      const mine = ids.get(client) ?? [];
      const id = mine[turn++ % mine.length];
      for (let i = 0; i < 3 && running; i++) {
        await client.request('POST', `/v1/voices/${id}/activate`);
        await sleep(300);
      }
      await sleep(1_500);
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
  };
}

/**
 * The clone budget (issue 12) end to end: the service on real Postgres and Redis, the ElevenLabs
 * sandbox over HTTP with a small add/edit budget. The sandbox holds more voices than the service
 * may (10 against 3), so an over-claim would show as voices held, not as a refusal.
 */
describe('clone budget', () => {
  let world: TestWorld;
  let sandbox: SandboxHandle;
  let service: ServiceProcess;

  afterEach(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  async function boot(
    budget: { limit: number; resetInSeconds: number; used?: number; periodSeconds?: number },
    env = {},
  ) {
    world = new TestWorld();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 10, cartesia: 10 } });
    sandbox.setConfig({
      cloneBudget: { elevenlabs: { periodSeconds: 3600, ...budget } },
    });
    service = await world.start({
      ...sandboxEnv(sandbox),
      ELEVENLABS_SLOT_LIMIT: '3',
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      ACTIVATION_LEASE_SECONDS: '2',
      CLONE_BUDGET_RESERVE: '0',
      SCHEDULER_TICK_SECONDS: '2',
      ...env,
    });
    await until('the account read', async () => (await churn(service)).limit === budget.limit);
  }

  async function uploadAll(clients: ApiClient[], perUser: number) {
    const ids = new Map<ApiClient, string[]>();
    for (const c of clients) {
      const mine: string[] = [];
      for (let i = 0; i < perUser; i++) {
        const res = await c.upload({ name: `${c.userId}-${i}` });
        expect(res.status).toBe(202);
        mine.push(res.body.id as string);
      }
      ids.set(c, mine);
    }
    return ids;
  }

  async function all(ids: Map<ApiClient, string[]>): Promise<VoiceJson[]> {
    const out: VoiceJson[] = [];
    for (const [c, mine] of ids) for (const id of mine) out.push(await c.get(id));
    return out;
  }

  it('spends at most the budget, wastes no voice, shows why voices wait, and recovers at the reset', async () => {
    // Billing cycles of 20 s after the first reset, paced over the same length by the service.
    await boot(
      { limit: 8, resetInSeconds: 45, periodSeconds: 20 },
      { CLONE_BUDGET_PERIOD_DAYS: String(20 / 86_400) },
    );
    // The provider publishes its reset in whole seconds; the service must report that moment.
    const resetAt =
      Math.floor(Date.parse(sandbox.config().cloneBudget.elevenlabs.resetsAt) / 1000) * 1000;
    const users = ['ann', 'bob', 'cyd'].map((u) => new ApiClient(service.url, u));
    // Nine voices, three slots, eight clones: the ninth voice waits for the reset.
    const ids = await uploadAll(users, 3);
    const stop = startActivations(users, ids);

    // Reclaims hand slots over until the eight clones are spent.
    const spent = await until(
      'the budget spent',
      async () => {
        const c = await churn(service);
        if (process.env.DEBUG_BUDGET) {
          const st = sandbox.state().elevenlabs;
          const vs = (await all(ids)).map((v) => `${v.status}:${v.queue?.waitReason ?? ''}`);
          process.stderr.write(
            `${JSON.stringify(c)} creates=${st.createAttempts} deletes=${st.deleteCount} ${vs.join(' ')}\n`,
          );
        }
        return c.exhausted ? c : null;
      },
      35_000,
    );
    expect(spent).toMatchObject({ used: 8, limit: 8, remaining: 0, allowedNow: false });
    const resetsAt = Date.parse(spent.resetsAt ?? '');
    expect(new Date(resetsAt).toISOString()).toBe(new Date(resetAt).toISOString());

    // While it is spent: no clone goes out, no ready voice is deleted, waiting voices say why.
    const deletesWhenSpent = sandbox.state().elevenlabs.deleteCount;
    let sawWaiting = 0;
    while (Date.now() < resetsAt - 4_000) {
      for (const v of await all(ids)) {
        if (v.status !== 'queued') continue;
        sawWaiting++;
        const q = v.queue as QueueJson;
        expect(q.waitReason).toBe('clone_budget');
        expect(Date.parse(q.estimatedReadyAt ?? '')).toBeGreaterThanOrEqual(resetsAt);
      }
      await sleep(1_000);
    }
    expect(sawWaiting).toBeGreaterThan(0);
    const beforeReset = sandbox.state().elevenlabs;
    // A reclaim decided just before the last clone was claimed may still be deleting; none after.
    const reclaimsAfterSpent = await world.db(async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM voice_events
          WHERE type = 'reclaiming'
            AND created_at > (SELECT max(created_at) FROM voice_events WHERE type = 'claimed') + interval '500 ms'`,
      );
      return rows[0].n;
    });
    expect(reclaimsAfterSpent).toBe(0);
    expect(beforeReset.deleteCount - deletesWhenSpent).toBeLessThanOrEqual(1);
    expect(beforeReset.createAttempts).toBeLessThanOrEqual(8);
    // The counter was read fresh, so the provider never had to refuse.
    expect(beforeReset.budgetRefusedCount).toBeLessThanOrEqual(1);
    expect(beforeReset.maxHeld).toBeLessThanOrEqual(3);
    await stop();

    // After the reset the waiting voices are served with no manual step: each, once activated.
    await sleep(Math.max(0, resetsAt - Date.now()));
    for (const [client, mine] of ids) {
      for (const id of mine) {
        const ready = await until(`voice ${id} ready after the reset`, async () => {
          const res = await client.request('POST', `/v1/voices/${id}/activate?waitSeconds=5`);
          return res.status === 200 ? (res.body as VoiceJson) : null;
        });
        expect(ready.status).toBe('ready');
      }
    }
    const end = await all(ids);
    expect(end.filter((v) => v.status === 'failed')).toHaveLength(0);
    expect(sandbox.state().elevenlabs.maxHeld).toBeLessThanOrEqual(3);
    expect(sandbox.state().elevenlabs.duplicateKeys).toHaveLength(0);
  });

  it('notices a budget spent by someone else on the account and waits for the reset', async () => {
    await boot({ limit: 100, resetInSeconds: 3000 }, { ACCOUNT_REFRESH_SECONDS: '3' });
    const alice = new ApiClient(service.url, 'alice');
    const first = (await alice.upload({ name: 'first' })).body.id as string;
    await alice.waitFor(first, ['ready']);

    // Someone spends the account's whole budget by hand.
    sandbox.setConfig({ cloneBudget: { elevenlabs: { used: 100 } } });
    const late = (await alice.upload({ name: 'late' })).body.id as string;
    const waiting = await until('the late voice waiting for the budget', async () => {
      const v = await alice.get(late);
      return v.status === 'queued' && (v.queue as QueueJson).waitReason === 'clone_budget'
        ? v
        : null;
    });
    expect((await churn(service)).exhausted).toBe(true);
    expect(Date.parse((waiting.queue as QueueJson).estimatedReadyAt ?? '')).toBeGreaterThan(
      Date.now() + 2_000_000,
    );
    // Noticed on the refresh or on the one refused clone; the voice was not failed for it.
    expect(sandbox.state().elevenlabs.budgetRefusedCount).toBeLessThanOrEqual(1);
    await sleep(3_000);
    expect(sandbox.state().elevenlabs.budgetRefusedCount).toBeLessThanOrEqual(1);
    expect((await alice.get(late)).status).toBe('queued');

    // The billing cycle ends: the next refresh sees the counter at 0 and the voice goes out.
    sandbox.setConfig({ cloneBudget: { elevenlabs: { resetInSeconds: 1 } } });
    const ready = await alice.waitFor(late, ['ready'], 20_000);
    expect(ready.remoteVoiceId).toBeTruthy();
    expect((await churn(service)).exhausted).toBe(false);
  });

  it('two replicas dispatching at once never send more clones than the budget allows', async () => {
    // Five voices at once against a budget with two clones left, on plenty of slots.
    await boot({ limit: 7, used: 5, resetInSeconds: 3000 }, { ELEVENLABS_SLOT_LIMIT: '10' });
    const second = await world.start({
      ...sandboxEnv(sandbox),
      ELEVENLABS_SLOT_LIMIT: '10',
      CLONE_BUDGET_RESERVE: '0',
      SCHEDULER_TICK_SECONDS: '2',
    });
    await until('both replicas read the account', async () => {
      const [a, b] = await Promise.all([churn(service), churn(second)]);
      return a.used === 5 && b.used === 5;
    });
    const clients = ['u1', 'u2', 'u3', 'u4', 'u5'].map(
      (u, i) => new ApiClient(i % 2 ? second.url : service.url, u),
    );
    const uploads = await Promise.all(clients.map((c) => c.upload({ name: c.userId })));
    const voiceIds = uploads.map((u) => u.body.id as string);
    await until('two voices ready', async () => {
      const vs = await Promise.all(clients.map((c, i) => c.get(voiceIds[i])));
      return vs.filter((v) => v.status === 'ready').length >= 2;
    });
    await sleep(3_000);
    const state = sandbox.state().elevenlabs;
    expect(state.createAttempts).toBe(2);
    expect(state.budgetRefusedCount).toBe(0);
    const vs = await Promise.all(clients.map((c, i) => c.get(voiceIds[i])));
    expect(vs.filter((v) => v.status === 'ready')).toHaveLength(2);
    expect(vs.filter((v) => v.status === 'queued')).toHaveLength(3);
    expect(vs.every((v) => v.status !== 'failed')).toBe(true);
  });
});
