import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { multipart, uploadForm } from './support/multipart';
import { S3TestServer } from './support/s3-server';
import { sandboxEnv } from './support/sandbox-env';
import { TestWorld } from './support/service';
import { makeWav } from './support/wav';

const MAX_SAMPLE_BYTES = 200_000;

/** Polls `check` every 100 ms until it holds; fails with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * STORAGE_DRIVER=s3 end to end against a real S3-compatible server (s3rver, over HTTP with signed
 * requests): samples are streamed into the bucket, read back for the clone, removed with the
 * voice, never left behind by a refused upload, and a delete that S3 could not take is retried
 * until the sample is gone.
 */
describe('S3 sample storage', () => {
  const world = new TestWorld();
  const s3 = new S3TestServer();
  let sandbox: SandboxHandle;
  let alice: ApiClient;

  const removal = (id: string) =>
    world.db(async (c) => {
      const { rows } = await c.query<{ due: Date | null; attempts: number }>(
        `SELECT sample_removal_due_at AS due, sample_removal_attempts AS attempts FROM voices WHERE id = $1`,
        [id],
      );
      return rows[0];
    });

  beforeAll(async () => {
    await s3.start();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    const service = await world.start({
      ...sandboxEnv(sandbox),
      ...s3.env(),
      MAX_SAMPLE_BYTES: String(MAX_SAMPLE_BYTES),
    });
    alice = new ApiClient(service.url, 'alice');
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
    await s3.dispose();
  });

  it('takes an upload to ready from the bucket and removes its object with the voice', async () => {
    const wav = makeWav(3, 16_000, 1);
    const res = await alice.upload({ name: 'Grandma', provider: 'elevenlabs', file: wav });
    expect(res.status).toBe(202);
    const ready = await alice.waitFor(res.body.id, ['ready', 'failed']);
    expect(ready.status).toBe('ready');
    // The clone read the sample back from S3: the digest the service stored is the file's.
    expect(ready.sample?.sha256).toBe(createHash('sha256').update(wav).digest('hex'));
    const keys = await s3.keys();
    expect(keys.filter((k) => k.includes(res.body.id))).toHaveLength(1);

    expect((await alice.request('DELETE', `/v1/voices/${res.body.id}`)).status).toBe(202);
    await until('the object to go', async () =>
      (await s3.keys()).every((k) => !k.includes(res.body.id)),
    );
  });

  it('refuses a sample over the cap with 413 and leaves nothing in the bucket', async () => {
    const before = await s3.keys();
    const big = makeWav(10, 16_000, 1); // 320 kB, over the 200 kB cap
    expect(big.length).toBeGreaterThan(MAX_SAMPLE_BYTES);
    // Chunked, with no Content-Length, so the cap is met while the sample streams into S3.
    const { body, contentType } = multipart(
      uploadForm(big, { name: 'Too big', provider: 'elevenlabs' }),
    );
    const res = await fetch(`${alice.baseUrl}/v1/voices`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${alice.token}`, 'Content-Type': contentType },
      body: Readable.toWeb(Readable.from([body.subarray(0, 65_536), body.subarray(65_536)])),
      duplex: 'half',
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe('sample_too_large');
    // Below one multipart part (5 MiB) the SDK holds the bytes until it has a part, so a refused
    // sample never reaches S3 at all; above it, abandoned parts are the orphan sweep's (unit
    // tested: s3rver does not list multipart uploads).
    expect(await s3.keys()).toEqual(before);
  });

  it('retries a delete that S3 could not take until the object is gone', async () => {
    const res = await alice.upload({ name: 'Grandpa', provider: 'elevenlabs' });
    const id = res.body.id;
    expect((await alice.waitFor(id, ['ready', 'failed'])).status).toBe('ready');
    expect((await s3.keys()).some((k) => k.includes(id))).toBe(true);

    await s3.stop();
    expect((await alice.request('DELETE', `/v1/voices/${id}`)).status).toBe(202);
    // The removal was tried, refused, and stays due with a back-off.
    await until('a refused removal', async () => ((await removal(id))?.attempts ?? 0) >= 1);
    expect((await removal(id))?.due).not.toBeNull();

    await s3.start();
    expect((await s3.keys()).some((k) => k.includes(id))).toBe(true);
    await until('the retried removal', async () => (await removal(id))?.due === null, 60_000);
    expect((await s3.keys()).some((k) => k.includes(id))).toBe(false);
  });
});
