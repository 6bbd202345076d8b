import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Operator routes on the built service: the slot pool per provider, dead letters with their
 * attempt history and their retry, and reconciliation with what the provider really holds
 * (foreign voices counted, orphans deleted, vanished voices corrected).
 */
describe('admin routes, dead letters and reconciliation', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let admin: ApiClient;
  let user: ApiClient;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      MAX_ATTEMPTS: '2',
      BREAKER_FAILURE_THRESHOLD: '100',
    });
    admin = new ApiClient(service.url, 'ops', 'admin');
    user = new ApiClient(service.url, 'erin');
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  const pool = async () =>
    (await admin.request('GET', '/v1/providers')).body as {
      provider: string;
      limit: number;
      held: number;
      foreign: number;
      free: number;
      breaker: string;
    }[];

  it('keeps admin routes for admins', async () => {
    expect((await user.request('GET', '/v1/providers')).status).toBe(403);
    expect((await user.request('GET', '/v1/admin/voices?status=failed')).status).toBe(403);
    expect((await user.request('POST', '/v1/admin/reconcile')).status).toBe(403);
    const res = await admin.request('GET', '/v1/providers');
    expect(res.status).toBe(200);
    expect(res.body.find((p: { provider: string }) => p.provider === 'elevenlabs')).toMatchObject({
      limit: 5,
      breaker: 'closed',
    });
  });

  it('lists a voice that exhausted its attempts with its history, and retries it to ready', async () => {
    sandbox.setConfig({ faults: { elevenlabs: { create: { error5xx: 1 } } } });
    const up = await user.upload({ name: 'Unlucky' });
    const failed = await user.waitFor(up.body.id, ['failed'], 30_000);
    expect(failed.failure).toMatchObject({ code: 'attempts_exhausted', attempts: 2 });

    const dead = await admin.request('GET', '/v1/admin/voices?status=failed');
    expect(dead.status).toBe(200);
    const entry = dead.body.find((d: { voice: { id: string } }) => d.voice.id === up.body.id);
    expect(
      entry.attempts.filter((a: { type: string }) => a.type === 'attempt_failed'),
    ).toHaveLength(1);
    expect(entry.attempts.at(-1)).toMatchObject({ type: 'failed', reason: 'attempts_exhausted' });

    sandbox.setConfig({ faults: { elevenlabs: {} } });
    // The failed voice's possible remote voice is cleaned up first; retry once that is done.
    let retry = await admin.request('POST', `/v1/admin/voices/${up.body.id}/retry`);
    for (let i = 0; i < 50 && retry.status === 409 && retry.body.code === 'cleanup_pending'; i++) {
      await sleep(200);
      retry = await admin.request('POST', `/v1/admin/voices/${up.body.id}/retry`);
    }
    expect(retry.status).toBe(202);
    expect(retry.body.status).toBe('queued');
    expect((await user.waitFor(up.body.id, ['ready'], 20_000)).status).toBe('ready');
    expect((await admin.request('POST', `/v1/admin/voices/${up.body.id}/retry`)).body.code).toBe(
      'voice_not_failed',
    );
  });

  it('reconciles: counts foreign voices, deletes orphans, corrects voices that vanished', async () => {
    const a = await user.waitFor((await user.upload({ name: 'Kept' })).body.id, ['ready']);
    const b = await user.waitFor((await user.upload({ name: 'Vanishing' })).body.id, ['ready']);
    // Someone adds a voice by hand; a second remote voice appears under a's key (a lost answer's
    // twin); b's remote voice is deleted behind our back.
    sandbox.addForeignVoice('elevenlabs', { name: 'made by hand' });
    const twin = sandbox.addForeignVoice('elevenlabs', { name: 'twin', labels: { vs_key: a.id } });
    expect(sandbox.removeVoice('elevenlabs', b.remoteVoiceId!)).toBe(true);

    const rec = await admin.request('POST', '/v1/admin/reconcile?provider=elevenlabs');
    expect(rec.status).toBe(202);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && sandbox.state().elevenlabs.voices.some((v) => v.id === twin.id))
      await sleep(200);

    const remoteIds = sandbox.state().elevenlabs.voices.map((v) => v.id);
    expect(remoteIds).not.toContain(twin.id);
    expect(remoteIds).toContain(a.remoteVoiceId);
    expect((await user.get(a.id)).status).toBe('ready');
    expect((await user.get(b.id)).status).toBe('reclaimed');
    const eleven = (await pool()).find((p) => p.provider === 'elevenlabs')!;
    expect(eleven.foreign).toBe(1);
    expect(eleven.free).toBe(eleven.limit - eleven.held - 1);
    const events = await world.db((c) =>
      c.query<{ type: string }>(`SELECT type FROM voice_events WHERE voice_id = $1`, [a.id]),
    );
    expect(events.rows.map((r) => r.type)).toContain('orphan_deleted');

    // Activating the vanished voice clones it again.
    const again = await user.request('POST', `/v1/voices/${b.id}/activate?waitSeconds=20`);
    expect(again.status).toBe(200);
    expect(again.body.remoteVoiceId).not.toBe(b.remoteVoiceId);
  });
});
