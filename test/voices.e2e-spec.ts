import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';
import { makeWav } from './support/wav';

/**
 * The whole path a user takes, over HTTP against the built service, with the provider sandbox as a
 * separate HTTP server: upload a real WAV, see it analysed, queued, cloned and ready, activate it,
 * delete it, and watch the remote voice and the sample disappear.
 */
describe('voices end to end', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let alice: ApiClient;
  let bob: ApiClient;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      CARTESIA_SLOT_LIMIT: '5',
    });
    alice = new ApiClient(service.url, 'alice');
    bob = new ApiClient(service.url, 'bob');
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  it('takes an upload to ready with its metadata and a remote voice at the provider', async () => {
    const wav = makeWav(3, 16_000, 1);
    const res = await alice.upload({ name: 'Grandma', provider: 'elevenlabs', file: wav });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      name: 'Grandma',
      provider: 'elevenlabs',
      status: 'pending',
      remoteVoiceId: null,
    });

    const ready = await alice.waitFor(res.body.id, ['ready', 'failed']);
    expect(ready.status).toBe('ready');
    expect(ready.sample).toEqual({
      format: 'wav',
      durationMs: 3000,
      sampleRate: 16_000,
      channels: 1,
      sizeBytes: wav.length,
      sha256: createHash('sha256').update(wav).digest('hex'),
    });
    expect(ready.remoteVoiceId).toEqual(expect.any(String));

    const remote = sandbox.state().elevenlabs.voices;
    expect(remote.map((v) => v.id)).toContain(ready.remoteVoiceId);
    // The provider received the whole sample.
    const created = remote.find((v) => v.id === ready.remoteVoiceId);
    expect(created?.name).toContain('Grandma');
  });

  it('answers a repeated read with an ETag and 304 Not Modified until the voice changes', async () => {
    const res = await alice.upload({ name: 'Conditional', provider: 'elevenlabs' });
    const ready = await alice.waitFor(res.body.id, ['ready', 'failed']);
    const first = await alice.request('GET', `/v1/voices/${ready.id}`);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^W\/"/);
    const again = await alice.request('GET', `/v1/voices/${ready.id}`, undefined, {
      'if-none-match': etag ?? '',
    });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    await alice.request('POST', `/v1/voices/${ready.id}/activate`);
    const changed = await alice.request('GET', `/v1/voices/${ready.id}`, undefined, {
      'if-none-match': etag ?? '',
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
  });

  it('clones a Cartesia voice through the Cartesia API', async () => {
    const res = await alice.upload({ name: 'Opa', provider: 'cartesia', language: 'de' });
    expect(res.status).toBe(202);
    const ready = await alice.waitFor(res.body.id, ['ready', 'failed']);
    expect(ready.status).toBe('ready');
    expect(sandbox.state().cartesia.voices.map((v) => v.id)).toContain(ready.remoteVoiceId);
  });

  it('activates a ready voice with a lease, and deletes it with its remote voice and sample', async () => {
    const up = await alice.upload({ name: 'To delete' });
    const ready = await alice.waitFor(up.body.id, ['ready']);

    const act = await alice.request('POST', `/v1/voices/${ready.id}/activate`);
    expect(act.status).toBe(200);
    expect(act.body.remoteVoiceId).toBe(ready.remoteVoiceId);
    expect(new Date(act.body.leaseExpiresAt).getTime()).toBeGreaterThan(Date.now() + 60_000);

    const del = await alice.request('DELETE', `/v1/voices/${ready.id}`);
    expect(del.status).toBe(202);
    expect(del.body.status).toBe('deleted');

    const deadline = Date.now() + 15_000;
    let remoteIds: string[] = [];
    let files: string[] = [];
    while (Date.now() < deadline) {
      remoteIds = sandbox.state().elevenlabs.voices.map((v) => v.id);
      files = readdirSync(join(world.storageDir, ready.id.slice(0, 2)), { withFileTypes: true })
        .filter((f) => f.name.startsWith(ready.id))
        .map((f) => f.name);
      if (!remoteIds.includes(ready.remoteVoiceId!) && files.length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(remoteIds).not.toContain(ready.remoteVoiceId);
    expect(files).toEqual([]);

    const after = await alice.request('POST', `/v1/voices/${ready.id}/activate`);
    expect(after.status).toBe(409);
    expect(after.body.code).toBe('voice_deleted');
  });

  it('waits for ready with waitSeconds instead of making the client poll', async () => {
    const up = await alice.upload({ name: 'Patient' });
    const act = await alice.request('POST', `/v1/voices/${up.body.id}/activate?waitSeconds=20`);
    expect(act.status).toBe(200);
    expect(act.body.status).toBe('ready');
  });

  it('refuses a sample that is too short at upload, with the reason', async () => {
    const up = await alice.upload({ name: 'Blip', seconds: 0.3 });
    expect(up.status).toBe(422);
    expect(up.headers.get('content-type')).toContain('application/problem+json');
    expect(up.body.code).toBe('sample_too_short');
  });

  it('refuses bytes that are not audio at upload, whatever they are called', async () => {
    const up = await alice.upload({
      name: 'Junk',
      file: Buffer.from('definitely not a wav file'.repeat(20)),
    });
    expect(up.status).toBe(415);
    expect(up.body.code).toBe('unsupported_media_type');
  });

  it("hides one user's voices from another", async () => {
    const up = await alice.upload({ name: 'Private' });
    expect((await bob.request('GET', `/v1/voices/${up.body.id}`)).status).toBe(404);
    expect((await bob.request('DELETE', `/v1/voices/${up.body.id}`)).status).toBe(404);
    const list = await bob.request('GET', '/v1/voices');
    expect(list.body.items.map((v: { id: string }) => v.id)).not.toContain(up.body.id);
  });

  it('pages through a list with a cursor, newest first', async () => {
    const carol = new ApiClient(service.url, 'carol');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await carol.upload({ name: `Voice ${i}` })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const page = await carol.request('GET', `/v1/voices?limit=2${q}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((v: { id: string }) => v.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });

  it('answers errors as problem+json with stable codes', async () => {
    const noToken = await fetch(`${service.url}/v1/voices`);
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get('content-type')).toContain('application/problem+json');
    expect(await noToken.json()).toMatchObject({ status: 401, code: 'unauthorized' });

    const badSig = await fetch(`${service.url}/v1/voices`, {
      headers: {
        authorization: `Bearer ${makeToken('alice', 'voices:read', { secret: 'another-secret-entirely' })}`,
      },
    });
    expect(badSig.status).toBe(401);

    const readOnly = new ApiClient(service.url, 'dave', 'voices:read');
    const forbidden = await readOnly.upload();
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.code).toBe('forbidden');

    const missing = await alice.request('GET', '/v1/voices/00000000-0000-4000-8000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('voice_not_found');

    const badProvider = await alice.upload({ provider: 'acme' });
    expect(badProvider.status).toBe(422);
    expect(badProvider.body.code).toBe('validation_failed');

    const badQuery = await alice.request('GET', '/v1/voices?limit=1000');
    expect(badQuery.status).toBe(422);
    expect(badQuery.body.code).toBe('validation_failed');
  });

  it('serves health probes, metrics and the OpenAPI document', async () => {
    expect((await fetch(`${service.url}/health/live`)).status).toBe(200);
    const ready = await fetch(`${service.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ok',
      info: { database: { status: 'up' }, redis: { status: 'up' } },
    });
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/voice_slots_limit\{provider="elevenlabs"\} 5/);
    const doc: any = await (await fetch(`${service.url}/docs-json`)).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/voices', '/v1/voices/{id}', '/v1/voices/{id}/activate']),
    );
    expect(doc.components.securitySchemes).toHaveProperty('bearer');
    expect((await fetch(`${service.url}/docs`)).status).toBe(200);
  });
});
