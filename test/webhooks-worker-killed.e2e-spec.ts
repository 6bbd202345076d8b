import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { TestWorld } from './support/service';
import { until } from './support/cluster';
import { Receiver } from './support/webhook-receiver';

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
