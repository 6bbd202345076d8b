import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { logLines, Processes, QueueProbe, sandboxEnv, until } from './support/cluster';
import { ServiceProcess, TestWorld } from './support/service';

/**
 * SIGTERM on a worker with slow provider calls in flight: it stops taking jobs, finishes what it
 * holds within the grace period, exits 0, and leaves the rest waiting in the queue for the next
 * worker; every voice ends ready with exactly one remote voice.
 */
describe('graceful shutdown', () => {
  const world = new TestWorld();
  const procs = new Processes(world);
  const probe = new QueueProbe(world);
  let sandbox: SandboxHandle;
  let api: ServiceProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 20, cartesia: 20 } });
    env = {
      ...sandboxEnv(sandbox),
      // Known up front: no scheduler runs here to read the account's limit.
      ELEVENLABS_SLOT_LIMIT: '12',
      LOG_LEVEL: 'info',
    };
    api = await procs.start({ ...env, APP_ROLES: 'api' });
  }, 60_000);

  afterAll(async () => {
    await probe.close();
    await procs.stopAll();
    await world.dispose();
    await sandbox?.close();
  }, 45_000);

  it('drains in-flight allocations on SIGTERM, exits 0 and hands the rest to the next worker', async () => {
    // Uploads first, with no worker: the first worker then claims all of them in one burst.
    const ids: string[] = [];
    for (const user of ['ana', 'ben', 'cy']) {
      const client = new ApiClient(api.url, user);
      for (let i = 0; i < 4; i++) {
        const res = await client.upload({ name: `${user} ${i}` });
        expect(res.status).toBe(202);
        ids.push(res.body.id);
      }
    }
    const byId = async () =>
      world.db(async (c) => {
        const rows = await c.query<{ id: string; status: string; remote_voice_id: string | null }>(
          `SELECT id, status, remote_voice_id FROM voices WHERE id = ANY($1::uuid[])`,
          [ids],
        );
        return rows.rows;
      });

    sandbox.setConfig({ latencyMs: 1500 });
    const grace = 10;
    const first = await procs.start({
      ...env,
      APP_ROLES: 'worker',
      SHUTDOWN_GRACE_SECONDS: String(grace),
    });

    // Eight allocations (the worker's concurrency per provider queue) held by the slow provider.
    const atSignal = await until(
      'allocations in flight',
      async () => {
        const c = await probe.counts('allocation-elevenlabs');
        return c.active >= 8 ? c : null;
      },
      20_000,
      25,
    );
    const code = await first.stop('SIGTERM');

    // Within the grace period: past it the process logs so and exits 1.
    expect(code).toBe(0);
    expect(logLines(first.output, 'voice-slots stopped')).toHaveLength(1);
    expect(
      logLines(
        first.output,
        'shutdown grace period exceeded; exiting with work in flight (it is retried elsewhere)',
      ),
    ).toHaveLength(0);

    // Finished what it held, took nothing more: as many ready as were in flight at the signal,
    // no job left locked by the dead process, and the rest waiting for the next worker.
    const afterFirst = await byId();
    const ready = afterFirst.filter((v) => v.status === 'ready');
    expect(ready.length).toBeGreaterThan(0);
    expect(ready.length).toBeLessThanOrEqual(atSignal.active);
    expect(ready.length).toBeLessThan(ids.length);
    const counts = await probe.counts('allocation-elevenlabs');
    expect(counts.active).toBe(0);
    expect(counts.waiting + counts.delayed).toBeGreaterThan(0);
    const metadata = await probe.counts('metadata');
    expect(metadata.active).toBe(0);
    expect(sandbox.state().elevenlabs.createCount).toBe(ready.length);

    // The next worker serves the rest at once: within 20 s, well under the 30 s lock a job left
    // behind mid-flight would hold, and the 120 s allocation lease the sweeper waits for.
    sandbox.setConfig({ latencyMs: 0 });
    const second = await procs.start({ ...env, APP_ROLES: 'worker' });
    const all = await until(
      'every voice ready',
      async () => {
        const rows = await byId();
        return rows.every((v) => v.status === 'ready') ? rows : null;
      },
      20_000,
    );

    const state = sandbox.state().elevenlabs;
    expect(state.duplicateKeys).toEqual([]);
    expect(state.createCount).toBe(ids.length);
    const remoteIds = state.voices.map((v) => v.id);
    for (const v of all) {
      expect(v.remote_voice_id).not.toBeNull();
      expect(remoteIds.filter((r) => r === v.remote_voice_id)).toHaveLength(1);
    }
    // Each claim was made once and dispatched once.
    const claims = await world.db(async (c) => {
      const r = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM voice_events WHERE type = 'claimed' GROUP BY voice_id, metadata->>'fencingToken' HAVING count(*) > 1`,
      );
      return r.rows;
    });
    expect(claims).toEqual([]);

    expect(await second.stop('SIGTERM')).toBe(0);
  }, 80_000);

  it('gives up at the grace period with exit 1 when in-flight work outlasts it', async () => {
    // ElevenLabs is full with the voices above; Cartesia has room.
    sandbox.setConfig({ latencyMs: 15_000 });
    const worker = await procs.start({ ...env, APP_ROLES: 'worker', SHUTDOWN_GRACE_SECONDS: '2' });
    const up = await new ApiClient(api.url, 'dee').upload({ name: 'Slow', provider: 'cartesia' });
    await until(
      'a create held by the provider',
      async () => (await probe.counts('allocation-cartesia')).active > 0,
      15_000,
      25,
    );
    expect(await worker.stop('SIGTERM')).toBe(1);
    // It waited out the grace period (by its own clock, in its log) before giving up, and never
    // reached a clean stop.
    const [stopping] = logLines(
      worker.output,
      'shutting down: taking no new jobs, finishing those in flight',
    );
    const [gaveUp] = logLines(
      worker.output,
      'shutdown grace period exceeded; exiting with work in flight (it is retried elsewhere)',
    );
    expect(gaveUp).toBeDefined();
    expect(Number(gaveUp.time) - Number(stopping.time)).toBeGreaterThanOrEqual(2_000);
    expect(logLines(worker.output, 'voice-slots stopped')).toHaveLength(0);
    // Not lost: the voice keeps its claim, which Bull's lock expiry or the sweeper hands on.
    const status = await world.db(async (c) => {
      const r = await c.query<{ status: string }>(`SELECT status FROM voices WHERE id = $1`, [
        up.body.id,
      ]);
      return r.rows[0].status;
    });
    expect(status).toBe('allocating');

    // A process with nothing in flight stops at once, cleanly.
    expect(await api.stop('SIGTERM')).toBe(0);
  }, 40_000);
});
