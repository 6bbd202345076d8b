import { randomUUID } from 'node:crypto';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';

/**
 * Activation of a ready voice is answered from memory once read (src/voice/ready-voice.cache.ts)
 * and tokens once verified (src/auth/auth.service.ts). These suites check what a user would
 * notice if those memories were wrong: a deleted voice still activating, another user's voice
 * answering, a forged token passing, on one replica or across two.
 */
describe('the activation hot path', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let replicas: ServiceProcess[];

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0 });
    const env = { ...sandboxEnv(sandbox), LOG_LEVEL: 'error' };
    const first = await world.start(env);
    replicas = [first, await world.start({ ...env, APP_ROLES: 'api' })];
  }, 60_000);

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  }, 30_000);

  const as = (user: string, replica: number) => new ApiClient(replicas[replica].url, user);

  /** A ready voice as an allocation leaves it (without a lease until its first activation). */
  async function readyVoice(userId: string): Promise<string> {
    const id = randomUUID();
    await world.db((c) =>
      c.query(
        `INSERT INTO voices (id, user_id, name, provider, status, remote_voice_id, ready_at,
            last_used_at, sample_key, sample_content_type, sample_filename, sample_size_bytes,
            sample_sha256, sample_format, sample_duration_ms, sample_rate, sample_channels)
         VALUES ($1, $2, 'hot', 'elevenlabs', 'ready', $3, now(), now(), 'k', 'audio/wav',
            'hot.wav', 1000, repeat('0', 64), 'wav', 3000, 16000, 1)`,
        [id, userId, `remote-${id}`],
      ),
    );
    return id;
  }

  /**
   * Activations until the voice is answered from memory: the first writes the lease (and opens
   * the replica's notification connection), a later one reads the voice and keeps it.
   */
  async function warm(client: ApiClient, id: string): Promise<void> {
    for (let i = 0; i < 4; i++) {
      const res = await client.request('POST', `/v1/voices/${id}/activate`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'ready', remoteVoiceId: `remote-${id}` });
    }
  }

  const activations = (id: string) =>
    world.db(async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM voice_events WHERE voice_id = $1 AND type = 'activated'`,
        [id],
      );
      return rows[0].n;
    });

  it('answers repeated activations of a ready voice with one lease write', async () => {
    const id = await readyVoice('alice');
    await warm(as('alice', 0), id);
    for (let i = 0; i < 20; i++) {
      expect((await as('alice', 0).request('POST', `/v1/voices/${id}/activate`)).status).toBe(200);
    }
    expect(await activations(id)).toBe(1);
  });

  it('refuses a voice deleted on the same replica right after the DELETE', async () => {
    const id = await readyVoice('alice');
    const alice = as('alice', 0);
    await warm(alice, id);
    expect((await alice.request('DELETE', `/v1/voices/${id}`)).status).toBe(202);
    const res = await alice.request('POST', `/v1/voices/${id}/activate`);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('voice_deleted');
  });

  it('refuses a voice deleted on another replica right after the DELETE', async () => {
    const id = await readyVoice('alice');
    await warm(as('alice', 0), id);
    await warm(as('alice', 1), id);
    expect((await as('alice', 1).request('DELETE', `/v1/voices/${id}`)).status).toBe(202);
    const res = await as('alice', 0).request('POST', `/v1/voices/${id}/activate`);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('voice_deleted');
  });

  it("answers another user's cached voice as not found", async () => {
    const id = await readyVoice('alice');
    await warm(as('alice', 0), id);
    const res = await as('mallory', 0).request('POST', `/v1/voices/${id}/activate`);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('voice_not_found');
    expect(JSON.stringify(res.body)).not.toContain(`remote-${id}`);
  });

  it('refuses a token with a bad signature although the good one was just accepted', async () => {
    const id = await readyVoice('alice');
    const alice = as('alice', 0);
    await warm(alice, id);
    const [h, p, sig] = alice.token.split('.');
    const forged = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    const res = await fetch(`${replicas[0].url}/v1/voices/${id}/activate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${forged}` },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
  });
});
