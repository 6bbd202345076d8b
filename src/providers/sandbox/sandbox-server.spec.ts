import { CartesiaProvider } from '../cartesia.provider';
import type { ElevenLabsProvider } from '../elevenlabs.provider';
import { type SandboxHandle, startSandbox } from './sandbox-server';
import { adaptersFor, caught, SPEC_SANDBOX } from './testing/sandbox-fixture';

describe('provider sandbox: the server', () => {
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

  it('applies fault rates as shares of requests, reproducibly with a seed', async () => {
    const run = async () => {
      sandbox.reset();
      sandbox.setConfig({ seed: 42, faults: { elevenlabs: { get: { error5xx: 0.5 } } } });
      let failed = 0;
      for (let i = 0; i < 40; i++) {
        if ((await el.getVoice('nope').catch(() => 'failed')) === 'failed') failed++;
      }
      return failed;
    };
    const first = await run();
    expect(first).toBeGreaterThan(8);
    expect(first).toBeLessThan(32);
    await expect(run()).resolves.toBe(first);
  });

  it('closes promptly while a request is held', async () => {
    const own = await startSandbox({ port: 0, faults: { cartesia: { any: { timeout: 1 } } } });
    const p = new CartesiaProvider({ baseUrl: own.baseUrl('cartesia'), apiKey: 'k', version: 'v' });
    const pending = caught(p.listVoices());
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(pending).resolves.toMatchObject({
      errorClass: 'retryable',
      code: 'network_error',
    });
  });
});
