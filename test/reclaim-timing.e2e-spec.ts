import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';

/**
 * A slot changes hands when the activation lease protecting it ends, not at the next scheduler
 * tick: with one slot, a queued voice waits for the ready voice's lease and gets the slot seconds
 * after it expires, although the scheduler's safety net runs only once a minute here.
 */
describe('reclaim at lease expiry', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  const LEASE_SECONDS = 3;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 1, cartesia: 10 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      RECLAIM_MIN_IDLE_SECONDS: '1',
      RECLAIM_MIN_RESIDENCY_SECONDS: '1',
      ACTIVATION_LEASE_SECONDS: String(LEASE_SECONDS),
      SCHEDULER_TICK_SECONDS: '60',
    });
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  it('hands the only slot to the queued voice right after the holder’s lease expires', async () => {
    const alice = new ApiClient(service.url, 'alice');
    const bob = new ApiClient(service.url, 'bob');
    const held = (await alice.upload({ name: 'held' })).body.id as string;
    await alice.waitFor(held, ['ready']);
    // Alice speaks with it: an activation lease now protects the voice.
    const activated = await alice.request('POST', `/v1/voices/${held}/activate`);
    expect(activated.status).toBe(200);
    const leasedAt = Date.now();

    const waiting = await bob.upload({ name: 'waiting' });
    expect(waiting.status).toBe(202);
    const waitingId = waiting.body.id as string;

    const ready = await bob.waitFor(waitingId, ['ready'], 20_000);
    const servedAfterMs = Date.now() - leasedAt;
    expect(ready.status).toBe('ready');
    // Not before the lease ended (it protects a voice in use), and long before the 60 s tick.
    expect(servedAfterMs).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000);
    expect(servedAfterMs).toBeLessThan(LEASE_SECONDS * 1000 + 8_000);

    // The holder was taken once, and only after its lease had run out.
    const reclaims = await world.db(async (c) => {
      const { rows } = await c.query<{ at: Date }>(
        `SELECT created_at AS at FROM voice_events WHERE voice_id = $1 AND type = 'reclaiming'`,
        [held],
      );
      return rows;
    });
    expect(reclaims).toHaveLength(1);
    expect(reclaims[0].at.getTime()).toBeGreaterThanOrEqual(leasedAt + LEASE_SECONDS * 1000 - 500);
    const heldNow = await alice.request('GET', `/v1/voices/${held}`);
    expect(heldNow.body.status).toBe('reclaimed');
    // Never two voices at the provider with one slot.
    expect(sandbox.state().elevenlabs.maxHeld).toBeLessThanOrEqual(1);
  });
});
