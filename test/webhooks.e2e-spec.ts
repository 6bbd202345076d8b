import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { checkWebhookUrl } from '../src/webhooks/webhook-url';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { until } from './support/cluster';

interface Received {
  id: string;
  type: string;
  data: {
    id: string;
    userId: string;
    status: string;
    remoteVoiceId: string | null;
    // provider.* events: the provider as GET /v1/providers shows it.
    provider?: string;
    breaker?: string;
    churn?: { used: number; limit: number | null; remaining: number | null; exhausted: boolean };
  };
}

/**
 * A webhook receiver as an app would run it: it verifies every request's signature with the
 * standardwebhooks library (a bad one fails the test), deduplicates by webhook-id, and can be made
 * to refuse connections, answer 500 or hang, to see the retries.
 */
class Receiver {
  mode: 'ok' | '500' | 'hang' = 'ok';
  secret = '';
  readonly requests: { id: string; at: number; mode: string }[] = [];
  readonly events = new Map<string, Received>();
  readonly badSignatures: string[] = [];
  private server: Server | null = null;
  private hanging: ServerResponse[] = [];
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops listening: deliveries meet a refused connection. */
  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging = [];
    const server = this.server;
    this.server = null;
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const id = String(req.headers['webhook-id']);
    this.requests.push({ id, at: Date.now(), mode: this.mode });
    if (this.mode === 'hang') {
      this.hanging.push(res);
      return;
    }
    if (this.mode === '500') {
      res.writeHead(500).end();
      return;
    }
    try {
      const event = new Webhook(this.secret).verify(body, {
        'webhook-id': id,
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      }) as Omit<Received, 'id'>;
      if (!this.events.has(id)) this.events.set(id, { id, ...event });
      res.writeHead(204).end();
    } catch {
      this.badSignatures.push(id);
      res.writeHead(400).end();
    }
  }

  of(type: string, voiceId: string): Received[] {
    return [...this.events.values()].filter((e) => e.type === type && e.data.id === voiceId);
  }

  ofProvider(type: string, provider: string): Received[] {
    return [...this.events.values()].filter((e) => e.type === type && e.data.provider === provider);
  }
}

/**
 * Webhooks end to end (CONTRACT.md "Push notifications"): an admin registers an endpoint, the
 * service signs and delivers the voice events users care about, and a receiver that is down,
 * failing or hanging for several retry steps gets every event once it recovers.
 */
describe('webhooks', () => {
  const world = new TestWorld();
  const receiver = new Receiver();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let alice: ApiClient;
  let admin: ApiClient;
  let endpointId = '';

  beforeAll(async () => {
    await receiver.start();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      ELEVENLABS_SLOT_LIMIT: '1',
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      ACTIVATION_LEASE_SECONDS: '1',
      WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,1,1,1,1,1,1,1,1,1,1,1',
    });
    alice = new ApiClient(service.url, 'alice');
    admin = new ApiClient(service.url, 'ops', 'admin');
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
    await receiver.stop();
  });

  const deliveries = async (status?: string) =>
    (
      await admin.request(
        'GET',
        `/v1/admin/webhooks/${endpointId}/deliveries${status ? `?status=${status}` : ''}`,
      )
    ).body as {
      eventId: string;
      eventType: string;
      voiceId: string;
      status: string;
      attempts: number;
      history: { status: number | null; error: string | null }[];
    }[];

  /**
   * The deliveries `pick` selects, once none is pending: attempts are recorded in batches just
   * after the receiver answers, so a read at the instant of receipt may not show them yet.
   */
  const settled = (pick: (d: Awaited<ReturnType<typeof deliveries>>[number]) => boolean) =>
    until(
      'the deliveries recorded',
      async () => {
        const rows = (await deliveries()).filter(pick);
        return rows.length && rows.every((d) => d.status !== 'pending') ? rows : undefined;
      },
      10_000,
    );

  it('registers an endpoint and shows its secret only once', async () => {
    const created = await admin.request(
      'POST',
      '/v1/admin/webhooks',
      JSON.stringify({
        url: receiver.url,
        events: ['voice.ready', 'voice.reclaimed', 'voice.remote_changed', 'voice.deleted'],
      }),
      { 'content-type': 'application/json' },
    );
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    receiver.secret = created.body.secret;
    endpointId = created.body.id;
    const list = await admin.request('GET', '/v1/admin/webhooks');
    expect(list.body).toEqual([expect.objectContaining({ id: endpointId, url: receiver.url })]);
    expect(JSON.stringify(list.body)).not.toContain(receiver.secret);
    // Users cannot manage webhooks.
    expect((await alice.request('GET', '/v1/admin/webhooks')).status).toBe(403);
  });

  it('delivers voice.ready once, signed, with the voice as GET shows it', async () => {
    const res = await alice.upload({ name: 'Grandma', provider: 'elevenlabs' });
    const ready = await alice.waitFor(res.body.id, ['ready', 'failed']);
    expect(ready.status).toBe('ready');
    const [event] = await until('voice.ready', () => {
      const got = receiver.of('voice.ready', res.body.id);
      return got.length ? got : undefined;
    });
    expect(event.data).toMatchObject({
      id: res.body.id,
      userId: 'alice',
      status: 'ready',
      remoteVoiceId: ready.remoteVoiceId,
    });
    expect(receiver.badSignatures).toEqual([]);
    const mine = await settled((d) => d.voiceId === res.body.id);
    expect(mine).toEqual([
      expect.objectContaining({ eventType: 'voice.ready', status: 'delivered', attempts: 1 }),
    ]);
  });

  it('keeps retrying a receiver that refuses, fails and hangs, and delivers when it recovers', async () => {
    await receiver.stop();
    // One voice waits for the only slot; reclaiming the first one for it is an event too.
    const res = await alice.upload({ name: 'Grandpa', provider: 'elevenlabs' });
    const id = res.body.id;
    const pending = await until('refused attempts', async () =>
      (await deliveries('pending')).find(
        (d) => d.voiceId === id && d.eventType === 'voice.ready' && d.attempts >= 2,
      ),
    );
    // Each failure mode is seen by this event's own delivery, not only by another one.
    const reached = (mode: string) => () =>
      receiver.requests.some((r) => r.id === pending.eventId && r.mode === mode) || undefined;
    receiver.mode = '500';
    await receiver.start();
    await until('a 500 answered', reached('500'));
    receiver.mode = 'hang';
    await until('a hanging request', reached('hang'));
    receiver.mode = 'ok';
    const event = await until(
      'voice.ready after recovery',
      () => receiver.of('voice.ready', id)[0],
      60_000,
    );
    expect(event.data.status).toBe('ready');
    const [d] = await settled((x) => x.voiceId === id && x.eventType === 'voice.ready');
    expect(d?.status).toBe('delivered');
    const outcomes = d?.history.map((a) => a.status ?? a.error) ?? [];
    expect(outcomes).toEqual(expect.arrayContaining(['ECONNREFUSED', 500, 'timeout', 204]));
    expect(outcomes[outcomes.length - 1]).toBe(204);
    // One webhook-id for every attempt of the event.
    expect(
      new Set(receiver.requests.filter((r) => r.id === d?.eventId).map((r) => r.id)).size,
    ).toBe(1);
    expect(receiver.badSignatures).toEqual([]);
  }, 120_000);

  it('tells of a reclaim and of the new remote id after a re-clone', async () => {
    const list = (await alice.request('GET', '/v1/voices')).body as {
      items: { id: string; name: string }[];
    };
    const first = list.items.find((v) => v.name === 'Grandma')!.id;
    // Grandma was reclaimed for Grandpa; activating her queues her, and Grandpa goes in turn.
    await until('voice.reclaimed', () => receiver.of('voice.reclaimed', first)[0], 60_000);
    const old = receiver.of('voice.ready', first)[0].data.remoteVoiceId;
    await alice.request('POST', `/v1/voices/${first}/activate`);
    const changed = await until(
      'voice.remote_changed',
      () => receiver.of('voice.remote_changed', first)[0],
      60_000,
    );
    expect(changed.data.remoteVoiceId).toEqual(expect.any(String));
    expect(changed.data.remoteVoiceId).not.toBe(old);
  }, 120_000);
});

describe('webhooks: a worker killed mid-delivery', () => {
  const world = new TestWorld();
  const receiver = new Receiver();
  let sandbox: SandboxHandle;
  let env: Record<string, string>;

  beforeAll(async () => {
    await receiver.start();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    env = { ...sandboxEnv(sandbox), WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,1,1,1' };
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
    await receiver.stop();
  });

  it('completes the delivery later on another worker, once', async () => {
    const api = await world.start({ ...env, APP_ROLES: 'api,scheduler' });
    const worker = await world.start({ ...env, APP_ROLES: 'worker' });
    const admin = new ApiClient(api.url, 'ops', 'admin');
    const alice = new ApiClient(api.url, 'alice');
    const created = await admin.request(
      'POST',
      '/v1/admin/webhooks',
      JSON.stringify({ url: receiver.url, events: ['voice.ready'] }),
      { 'content-type': 'application/json' },
    );
    receiver.secret = created.body.secret;
    receiver.mode = 'hang';
    const res = await alice.upload({ name: 'Grandma', provider: 'elevenlabs' });
    expect((await alice.waitFor(res.body.id, ['ready', 'failed'])).status).toBe('ready');
    await until('the delivery in flight', () => receiver.requests.length > 0 || undefined);
    await worker.stop('SIGKILL');
    receiver.mode = 'ok';
    await world.start({ ...env, APP_ROLES: 'worker' });
    const event = await until(
      'voice.ready',
      () => receiver.of('voice.ready', res.body.id)[0],
      60_000,
    );
    expect(event.data.status).toBe('ready');
    // Attempts are recorded in batches just after the receiver answers: wait for the record.
    const list = await until(
      'the delivery recorded',
      async () => {
        const rows = (
          await admin.request('GET', `/v1/admin/webhooks/${created.body.id}/deliveries`)
        ).body as { status: string; attempts: number }[];
        return rows.some((d) => d.status !== 'pending') ? rows : undefined;
      },
      10_000,
    );
    // The killed worker's attempt never completed; the lease handed the delivery on.
    expect(list).toEqual([expect.objectContaining({ status: 'delivered', attempts: 1 })]);
    expect(receiver.events.size).toBe(1);
    expect(receiver.badSignatures).toEqual([]);
  }, 120_000);
});

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

describe('webhook URLs in production', () => {
  it('refuses private, loopback and metadata addresses and plain http', async () => {
    const rules = { production: true, allowPrivate: false };
    for (const url of [
      'https://127.0.0.1/hook',
      'https://10.1.2.3/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/hook',
      'https://[::ffff:192.168.0.1]/hook',
      'https://localhost/hook',
      'http://93.184.215.14/hook',
      'https://user:pw@93.184.215.14/hook',
    ])
      await expect(checkWebhookUrl(url, rules)).rejects.toMatchObject({
        code: 'webhook_url_refused',
      });
    await expect(checkWebhookUrl('https://93.184.215.14/hook', rules)).resolves.toBeInstanceOf(URL);
  });
});
