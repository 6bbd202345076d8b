import { ApiClient } from './support/api';
import { ServiceProcess, TestWorld } from './support/service';
import { makeWav } from './support/wav';

/** Idempotency-Key on uploads, with Stripe's semantics, against the built service. */
describe('upload idempotency', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  let alice: ApiClient;

  beforeAll(async () => {
    service = await world.start();
    alice = new ApiClient(service.url, 'alice');
  });

  afterAll(() => world.dispose());

  const upload = (
    client: ApiClient,
    key: string,
    opts: { name?: string; seconds?: number } = {},
  ) => {
    const form = new FormData();
    form.set('name', opts.name ?? 'Grandma');
    form.set('provider', 'elevenlabs');
    form.set(
      'file',
      new Blob([new Uint8Array(makeWav(opts.seconds ?? 2))], { type: 'audio/wav' }),
      'g.wav',
    );
    return client.request('POST', '/v1/voices', form, { 'idempotency-key': key });
  };
  const voiceCount = (userId: string) =>
    world.db(
      async (c) =>
        (
          await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM voices WHERE user_id = $1`, [
            userId,
          ])
        ).rows[0].n,
    );

  it('answers a replay with the first response and creates nothing', async () => {
    const first = await upload(alice, 'key-replay');
    expect(first.status).toBe(202);
    const again = await upload(alice, 'key-replay');
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await voiceCount('alice')).toBe(1);
  });

  it('refuses the same key with a different request, leaving no sample behind', async () => {
    await upload(alice, 'key-reused', { name: 'One' });
    const other = await upload(alice, 'key-reused', { name: 'Two' });
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_key_reused');
    expect(await voiceCount('alice')).toBe(2);
  });

  it('creates one voice for concurrent identical requests', async () => {
    const bob = new ApiClient(service.url, 'bob');
    const answers = await Promise.all(Array.from({ length: 6 }, () => upload(bob, 'key-race')));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
    expect(new Set(answers.map((a) => String(a.body.id))).size).toBe(1);
    expect(await voiceCount('bob')).toBe(1);
  });

  it('lets a failed request be retried with its key, and scopes keys per user', async () => {
    const carol = new ApiClient(service.url, 'carol');
    const tooShort = await upload(carol, 'key-retry', { seconds: 0.2 });
    expect(tooShort.status).toBe(422);
    const fixed = await upload(carol, 'key-retry');
    expect(fixed.status).toBe(202);
    const dave = new ApiClient(service.url, 'dave');
    const same = await upload(dave, 'key-retry');
    expect(same.status).toBe(202);
    expect(same.body.id).not.toBe(fixed.body.id);
  });

  it('rejects a malformed key', async () => {
    const bad = await upload(alice, 'has spaces and ünïcode');
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe('validation_failed');
  });
});
