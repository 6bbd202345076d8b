import type { ElevenLabsProvider } from '../elevenlabs.provider';
import { type SandboxHandle, startSandbox } from './sandbox-server';
import { adaptersFor, SPEC_SANDBOX } from './testing/sandbox-fixture';

describe('provider sandbox: the control API over HTTP', () => {
  let sandbox: SandboxHandle;
  let el: ElevenLabsProvider;

  beforeAll(async () => {
    sandbox = await startSandbox(SPEC_SANDBOX);
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    sandbox.reset();
    ({ el } = adaptersFor(sandbox));
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sandbox.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };

  it('sets config, adds foreign voices, reports state and resets', async () => {
    const put = await call('PUT', '/_sandbox/config', {
      latencyMs: 5,
      voiceLimit: { elevenlabs: 7 },
      faults: { cartesia: { delete: { error5xx: 0.5 } } },
    });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({
      latencyMs: 5,
      voiceLimit: { elevenlabs: 7, cartesia: 4 },
      faults: { cartesia: { delete: { error5xx: 0.5 } }, elevenlabs: {} },
    });

    const foreign = await call('POST', '/_sandbox/cartesia/foreign', { name: 'manual' });
    expect(foreign.status).toBe(201);
    expect(foreign.json).toMatchObject({ name: 'manual', idempotencyKey: null, foreign: true });

    const state = await call('GET', '/_sandbox/state');
    expect(state.json.cartesia.voices).toHaveLength(1);
    expect(state.json.elevenlabs).toMatchObject({ limit: 7, duplicateKeys: [] });

    expect((await call('DELETE', `/_sandbox/cartesia/voices/${foreign.json.id}`)).status).toBe(204);
    expect((await call('POST', '/_sandbox/reset')).status).toBe(200);
    expect(sandbox.config()).toMatchObject({
      latencyMs: 0,
      voiceLimit: { elevenlabs: 3, cartesia: 4 },
      faults: { elevenlabs: {}, cartesia: {} },
    });
  });

  it('refuses an invalid config, naming the field', async () => {
    const res = await call('PUT', '/_sandbox/config', {
      faults: { elevenlabs: { create: { error5xx: 2 } } },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.json.issues)).toContain('error5xx');
    const typo = await call('PUT', '/_sandbox/config', { latency: 5 });
    expect(typo.status).toBe(400);
  });

  it('applies latency to provider requests', async () => {
    sandbox.setConfig({ latencyMs: 150 });
    const started = Date.now();
    await el.getAccountLimits();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });
});
