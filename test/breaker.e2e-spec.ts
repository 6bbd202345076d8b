import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';

/**
 * A provider outage opens that provider's circuit breaker (shared through Postgres by every
 * replica): its dispatch pauses without spending the voices' attempts, the other provider is not
 * slowed, and a half-open probe closes the breaker when the provider recovers.
 */
describe('circuit breaker per provider', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 10, cartesia: 10 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      CARTESIA_SLOT_LIMIT: '10',
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_COOLDOWN_SECONDS: '2',
      MAX_ATTEMPTS: '4',
      SCHEDULER_TICK_SECONDS: '1',
    });
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  const admin = makeToken('ops', 'admin');
  async function breakerOf(provider: string): Promise<string> {
    const res = await fetch(`${service.url}/v1/providers`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const body = (await res.json()) as { provider: string; breaker: string }[];
    return body.find((p) => p.provider === provider)?.breaker ?? 'missing';
  }

  it('pauses only the failing provider, spends no attempts, and recovers through a probe', async () => {
    sandbox.setConfig({ faults: { elevenlabs: { create: { error5xx: 1 } } } });
    const client = new ApiClient(service.url, 'dora');
    const eleven: string[] = [];
    for (let i = 0; i < 6; i++) eleven.push((await client.upload({ name: `out${i}` })).body.id);

    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await breakerOf('elevenlabs')) !== 'open') {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await breakerOf('elevenlabs')).toBe('open');

    // The other provider is served meanwhile, untouched by the open breaker: each of its voices
    // is cloned by its first call, with no pause, retry or requeue, while ElevenLabs stays open.
    // (How fast is the benchmark's business: bench/scenarios/faults.ts.)
    const cartesiaCreatesBefore = sandbox.state().cartesia.createAttempts;
    const cartesia: string[] = [];
    for (let i = 0; i < 3; i++)
      cartesia.push((await client.upload({ name: `ok${i}`, provider: 'cartesia' })).body.id);
    for (const id of cartesia)
      expect((await client.waitFor(id, ['ready'], 60_000)).status).toBe('ready');
    expect(await breakerOf('elevenlabs')).toBe('open');
    expect(await breakerOf('cartesia')).toBe('closed');
    expect(sandbox.state().cartesia.createAttempts - cartesiaCreatesBefore).toBe(3);
    const detours = await world.db(async (c) => {
      const r = await c.query<{ type: string }>(
        `SELECT type FROM voice_events WHERE voice_id = ANY($1::uuid[])
            AND type IN ('requeued', 'attempt_failed', 'retried', 'failed')`,
        [cartesia],
      );
      return r.rows.map((e) => e.type);
    });
    expect(detours).toEqual([]);

    // Several cool-downs pass with the outage on: half-open probes fail, yet no voice fails,
    // because an open breaker gives the attempt back (MAX_ATTEMPTS is only 4 here).
    await new Promise((r) => setTimeout(r, 7_000));
    for (const id of eleven) expect((await client.get(id)).status).not.toBe('failed');
    const creates = sandbox.state().elevenlabs.createAttempts;
    // Open means paused: far fewer calls than six voices retrying freely for ten seconds.
    expect(creates).toBeLessThan(6 * 4);

    sandbox.setConfig({ faults: { elevenlabs: {} } });
    for (const id of eleven)
      expect((await client.waitFor(id, ['ready'], 60_000)).status).toBe('ready');
    expect(await breakerOf('elevenlabs')).toBe('closed');
    expect(sandbox.state().elevenlabs.duplicateKeys).toEqual([]);
  });
});
