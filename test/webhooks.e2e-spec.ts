import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { until } from './support/cluster';
import { Receiver } from './support/webhook-receiver';

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
