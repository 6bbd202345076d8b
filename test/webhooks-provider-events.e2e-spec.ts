import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { until } from './support/cluster';
import { Receiver } from './support/webhook-receiver';

describe('webhooks: provider events', () => {
  const world = new TestWorld();
  const receiver = new Receiver();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let admin: ApiClient;
  let alice: ApiClient;

  beforeAll(async () => {
    await receiver.start();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 10, cartesia: 10 } });
    sandbox.setConfig({
      cloneBudget: { elevenlabs: { limit: 4, resetInSeconds: 3600, periodSeconds: 3600 } },
    });
    service = await world.start({
      ...sandboxEnv(sandbox),
      CARTESIA_SLOT_LIMIT: '10',
      CLONE_BUDGET_RESERVE: '0',
      CLONE_BUDGET_LOW_RATIO: '0.5',
      BREAKER_FAILURE_THRESHOLD: '2',
      BREAKER_COOLDOWN_SECONDS: '1',
      MAX_ATTEMPTS: '10',
      WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,1,1,1',
    });
    admin = new ApiClient(service.url, 'ops', 'admin');
    alice = new ApiClient(service.url, 'alice');
    const created = await admin.request(
      'POST',
      '/v1/admin/webhooks',
      JSON.stringify({
        url: receiver.url,
        events: [
          'provider.breaker_opened',
          'provider.breaker_closed',
          'provider.clone_budget_low',
          'provider.clone_budget_exhausted',
        ],
      }),
      { 'content-type': 'application/json' },
    );
    expect(created.status).toBe(201);
    receiver.secret = created.body.secret;
    await until('the account read', async () => {
      const providers = (await admin.request('GET', '/v1/providers')).body as {
        provider: string;
        churn: { limit: number | null };
      }[];
      return providers.find((p) => p.provider === 'elevenlabs')?.churn.limit === 4;
    });
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
    await receiver.stop();
  });

  it('tells of a budget running low and then spent, once each', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await alice.upload({ name: `b${i}` })).body.id);
    for (const id of ids) expect((await alice.waitFor(id, ['ready'], 60_000)).status).toBe('ready');
    const low = await until(
      'provider.clone_budget_low',
      () => receiver.ofProvider('provider.clone_budget_low', 'elevenlabs')[0],
    );
    expect(low.data.churn).toMatchObject({ limit: 4, exhausted: false });
    expect(low.data.churn?.remaining).toBeLessThanOrEqual(2);
    expect(receiver.ofProvider('provider.clone_budget_exhausted', 'elevenlabs')).toEqual([]);
    for (let i = 2; i < 4; i++) ids.push((await alice.upload({ name: `b${i}` })).body.id);
    for (const id of ids) expect((await alice.waitFor(id, ['ready'], 60_000)).status).toBe('ready');
    const spent = await until(
      'provider.clone_budget_exhausted',
      () => receiver.ofProvider('provider.clone_budget_exhausted', 'elevenlabs')[0],
    );
    expect(spent.data).toMatchObject({
      provider: 'elevenlabs',
      churn: { limit: 4, remaining: 0, exhausted: true },
    });
    // The account is read again after each clone; announced once per period all the same.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(receiver.ofProvider('provider.clone_budget_low', 'elevenlabs')).toHaveLength(1);
    expect(receiver.ofProvider('provider.clone_budget_exhausted', 'elevenlabs')).toHaveLength(1);
    expect(receiver.badSignatures).toEqual([]);
  }, 120_000);

  it('tells of a breaker opening in an outage and closing when the provider recovers', async () => {
    sandbox.setConfig({ faults: { cartesia: { create: { error5xx: 1 } } } });
    const res = await alice.upload({ name: 'outage', provider: 'cartesia' });
    const opened = await until(
      'provider.breaker_opened',
      () => receiver.ofProvider('provider.breaker_opened', 'cartesia')[0],
      60_000,
    );
    expect(opened.data).toMatchObject({ provider: 'cartesia', breaker: 'open' });
    expect(receiver.ofProvider('provider.breaker_closed', 'cartesia')).toEqual([]);
    sandbox.setConfig({ faults: { cartesia: {} } });
    expect((await alice.waitFor(res.body.id, ['ready'], 60_000)).status).toBe('ready');
    const closed = await until(
      'provider.breaker_closed',
      () => receiver.ofProvider('provider.breaker_closed', 'cartesia')[0],
    );
    expect(closed.data).toMatchObject({ provider: 'cartesia', breaker: 'closed' });
    // Failed half-open probes in between are not announced again.
    expect(receiver.ofProvider('provider.breaker_opened', 'cartesia')).toHaveLength(1);
    expect(receiver.badSignatures).toEqual([]);
  }, 120_000);
});
