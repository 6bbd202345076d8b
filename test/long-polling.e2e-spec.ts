import { ApiClient } from './support/api';
import { metric } from './support/prometheus';
import { ServiceProcess, TestWorld } from './support/service';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('long-polling activations', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  const PER_USER = 10;
  const PER_REPLICA = 15;
  beforeAll(async () => {
    service = await world.start({
      // No slot ever frees: every voice stays queued, every wait lasts its full waitSeconds.
      SANDBOX_VOICE_LIMIT: '0',
      LONG_POLL_MAX_PER_USER: String(PER_USER),
      LONG_POLL_MAX_PER_REPLICA: String(PER_REPLICA),
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '1000000',
      LOG_LEVEL: 'error',
    });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  const scrape = async () => (await fetch(`${service.url}/metrics`)).text();
  const waiters = async () => metric(await scrape(), 'voice_slots_activation_waiters')[0];

  /** Sends `n` waiting activations; resolves once all but `open` answered, with those answers. */
  async function flood(client: ApiClient, id: string, n: number, open: number) {
    const answers: Array<{ status: number; body: any }> = [];
    const all = Array.from({ length: n }, () =>
      client.request('POST', `/v1/voices/${id}/activate?waitSeconds=30`).then((r) => {
        answers.push(r);
        return r;
      }),
    );
    for (let i = 0; answers.length < n - open; i++) {
      if (i > 600) throw new Error(`only ${answers.length} of ${n} answered`);
      await sleep(100);
    }
    return { answeredAtOnce: [...answers], all: Promise.all(all) };
  }

  it('lets 10 of 500 from one user wait, answers the rest at once, and caps the replica', async () => {
    const alice = new ApiClient(service.url, 'alice');
    const bob = new ApiClient(service.url, 'bob');
    const a = (await alice.upload()).body.id as string;
    const b = (await bob.upload()).body.id as string;
    await alice.waitFor(a, ['queued']);
    await bob.waitFor(b, ['queued']);

    const fromAlice = await flood(alice, a, 500, PER_USER);
    expect(fromAlice.answeredAtOnce).toHaveLength(500 - PER_USER);
    for (const r of fromAlice.answeredAtOnce) {
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ id: a, status: 'queued', queue: { position: 1 } });
    }
    expect(await waiters()).toBe(PER_USER);

    // The replica's cap: bob gets what is left of it.
    const fromBob = await flood(bob, b, 50, PER_REPLICA - PER_USER);
    expect(fromBob.answeredAtOnce).toHaveLength(50 - (PER_REPLICA - PER_USER));
    expect(fromBob.answeredAtOnce.every((r) => r.status === 202)).toBe(true);
    const scraped = await scrape();
    expect(metric(scraped, 'voice_slots_activation_waiters')[0]).toBe(PER_REPLICA);
    expect(metric(scraped, 'process_resident_memory_bytes')[0]).toBeLessThan(512 * 1024 * 1024);

    // The waits end with the voices: every open request gets its answer, a problem document.
    expect((await alice.request('DELETE', `/v1/voices/${a}`)).status).toBe(202);
    expect((await bob.request('DELETE', `/v1/voices/${b}`)).status).toBe(202);
    const waited = [...(await fromAlice.all), ...(await fromBob.all)].filter(
      (r) => r.status !== 202,
    );
    expect(waited).toHaveLength(PER_REPLICA);
    for (const r of waited) expect([r.status, r.body.code]).toEqual([409, 'voice_deleted']);
    expect(await waiters()).toBe(0);
  }, 90_000);
});
