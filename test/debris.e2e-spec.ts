import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { sampleKeyOf } from '../src/voice/sample-storage.port';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { makeWav } from './support/wav';

const ALL_STATES = [
  'allocating',
  'failed',
  'pending',
  'queued',
  'ready',
  'reclaimed',
  'reclaiming',
].sort();
/** Older than SAMPLE_ORPHAN_AGE_SECONDS (an hour by default). */
const TWO_HOURS_AGO = new Date(Date.now() - 2 * 3600_000);

/**
 * No debris, on the built service against the provider sandbox: a voice deleted in any state loses
 * its sample even when its clean-up job is lost (Redis emptied before any worker ran it), and what
 * an upload that crashed between storing and inserting leaves (a sample with no row, a `.part`) is
 * swept once it is old enough, while fresh writes and samples with a row stay.
 *
 * The voices are brought into each state by real work (slots full, a clone hanging at the
 * provider, a reclaim whose delete hangs, a sample too short for the workers), then the process is
 * killed, so the
 * states hold while an api-only process deletes them. The worker and scheduler start only after
 * Redis was emptied: whatever removes the samples then was re-driven from Postgres.
 */
describe('debris', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let api: ServiceProcess;
  const deleted = new Map<string, string>();
  const orphans = {
    old: `ab${randomUUID().slice(2)}`,
    fresh: `ab${randomUUID().slice(2)}`,
    oldPart: `ab${randomUUID().slice(2)}`,
    freshPart: `ab${randomUUID().slice(2)}`,
  };
  let live = '';

  const pathOf = (voiceId: string) => join(world.storageDir, sampleKeyOf(voiceId));
  const env = () => ({
    ...sandboxEnv(sandbox),
    ELEVENLABS_SLOT_LIMIT: '2',
    CARTESIA_SLOT_LIMIT: '1',
    RECLAIM_MIN_IDLE_SECONDS: '0',
    RECLAIM_MIN_RESIDENCY_SECONDS: '0',
  });

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 2, cartesia: 1 } });
    // A replica that accepts shorter samples than the workers do (a configuration change under
    // way): the workers' metadata check fails the voice.
    const lenient = await world.start({ ...env(), APP_ROLES: 'api', MIN_SAMPLE_SECONDS: '0.1' });
    const short = await new ApiClient(lenient.url, 'alice').upload({ seconds: 0.3 });
    expect(short.status).toBe(202);
    const failed = short.body.id as string;
    await lenient.stop();

    const all = await world.start(env());
    const alice = new ApiClient(all.url, 'alice');
    const upload = async (provider: string) => {
      const res = await alice.upload({ provider, seconds: 2 });
      expect(res.status).toBe(202);
      return res.body.id as string;
    };

    // Cartesia has one slot: the second voice's backlog reclaims the first (reclaimed); with the
    // provider's deletes hanging, the third's reclaims the second and holds it (reclaiming, third
    // queued).
    const reclaimed = await upload('cartesia');
    await alice.waitFor(reclaimed, ['ready']);
    const reclaiming = await upload('cartesia');
    await alice.waitFor(reclaimed, ['reclaimed']);
    await alice.waitFor(reclaiming, ['ready']);
    // ElevenLabs: one voice ready, the next one's clone hangs at the provider (allocating).
    const ready = await upload('elevenlabs');
    await alice.waitFor(ready, ['ready']);
    const hang = { timeout: 1, timeoutMs: 600_000 };
    sandbox.setConfig({ faults: { elevenlabs: { create: hang }, cartesia: { delete: hang } } });
    const queued = await upload('cartesia');
    await alice.waitFor(reclaiming, ['reclaiming']);
    const allocating = await upload('elevenlabs');
    await alice.waitFor(allocating, ['allocating']);
    expect((await alice.waitFor(failed, ['failed'])).failure?.code).toBe('sample_too_short');
    await all.stop('SIGKILL');

    api = await world.start({ ...env(), APP_ROLES: 'api' });
    const bob = new ApiClient(api.url, 'bob');
    const pending = (await bob.upload({ provider: 'elevenlabs' })).body.id as string;
    live = (await bob.upload({ provider: 'elevenlabs' })).body.id as string;
    const frozen = new ApiClient(api.url, 'alice');
    for (const id of [reclaimed, reclaiming, queued, ready, allocating, failed]) {
      deleted.set(id, (await frozen.get(id)).status);
      expect((await frozen.request('DELETE', `/v1/voices/${id}`)).status).toBe(202);
    }
    deleted.set(pending, (await bob.get(pending)).status);
    expect((await bob.request('DELETE', `/v1/voices/${pending}`)).status).toBe(202);

    // The clean-up jobs those deletes enqueued are lost, as with a Redis restarted empty.
    const { default: Redis } = await import('ioredis');
    const redis = new Redis(world.env().REDIS_URL);
    const keys = await redis.keys(`${world.queuePrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();

    // A crash between storing a sample and inserting its row, an hour or more ago and just now.
    mkdirSync(join(world.storageDir, 'ab'), { recursive: true });
    for (const [name, id] of Object.entries(orphans)) {
      const path = name.endsWith('Part') ? `${pathOf(id)}.part` : pathOf(id);
      writeFileSync(path, 'RIFF');
      if (name.startsWith('old')) utimesSync(path, TWO_HOURS_AGO, TWO_HOURS_AGO);
    }
    // A sample with its row, last written long ago, is not an orphan.
    utimesSync(pathOf(live), TWO_HOURS_AGO, TWO_HOURS_AGO);

    // Nothing removed any of it yet.
    for (const id of deleted.keys()) expect(existsSync(pathOf(id))).toBe(true);
    sandbox.setConfig({ faults: { elevenlabs: {}, cartesia: {} } });
    await world.start({ ...env(), APP_ROLES: 'worker,scheduler' });
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  /** Polls until `done` holds (a wait, not a timing claim); fails with `what` if it never does. */
  async function eventually(what: string, done: () => boolean | Promise<boolean>) {
    const deadline = Date.now() + 60_000;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('removes the sample of a voice deleted in any state, though its clean-up job was lost', async () => {
    expect([...new Set(deleted.values())].sort()).toEqual(ALL_STATES);
    const left = () => [...deleted].filter(([id]) => existsSync(pathOf(id)));
    // The file goes first, then its row records it: both are waited for.
    const stillPending = () =>
      world.db(async (c) => {
        const { rows } = await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM voices WHERE sample_removal_due_at IS NOT NULL`,
        );
        return rows[0].n;
      });
    await eventually(
      'every deleted sample removed',
      async () => left().length === 0 && (await stillPending()) === 0,
    ).catch(async () => {
      const states = left().map(([, s]) => s);
      throw new Error(
        `samples left by state: ${JSON.stringify(states)}; rows pending: ${await stillPending()}`,
      );
    });
  });

  it('sweeps a sample with no row and an unfinished write, once older than the threshold', async () => {
    await eventually('old orphan and .part removed', () => {
      return !existsSync(pathOf(orphans.old)) && !existsSync(`${pathOf(orphans.oldPart)}.part`);
    });
  });

  it('keeps a fresh orphan, a fresh .part and an old sample whose row exists', async () => {
    // The .part sweep runs after the whole listing, and every file was there before the
    // scheduler started: once the old .part is gone, a full sweep has seen all of them.
    await eventually('old .part removed', () => !existsSync(`${pathOf(orphans.oldPart)}.part`));
    expect(existsSync(pathOf(orphans.fresh))).toBe(true);
    expect(existsSync(`${pathOf(orphans.freshPart)}.part`)).toBe(true);
    expect(existsSync(pathOf(live))).toBe(true);
  });

  it('removes the sample of a voice deleted with every role running', async () => {
    const carol = new ApiClient(api.url, 'carol');
    const id = (await carol.upload({ provider: 'cartesia', file: makeWav(2) })).body.id as string;
    await carol.waitFor(id, ['queued', 'allocating', 'ready']);
    expect(existsSync(pathOf(id))).toBe(true);
    expect((await carol.request('DELETE', `/v1/voices/${id}`)).status).toBe(202);
    await eventually('sample removed', () => !existsSync(pathOf(id)));
  });
});
