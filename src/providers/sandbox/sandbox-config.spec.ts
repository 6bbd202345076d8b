import { ConfigError } from '../../config/app-config';
import { loadSandboxConfig } from '../../config/sandbox-config';

describe('loadSandboxConfig', () => {
  it('has defaults', () => {
    expect(loadSandboxConfig({})).toEqual({
      port: 4010,
      host: '127.0.0.1',
      voiceLimit: { elevenlabs: 10, cartesia: 100 },
      latencyMs: 0,
      cloneBudget: { limit: undefined, periodSeconds: undefined },
    });
  });

  it('reads every variable, blank meaning unset', () => {
    expect(
      loadSandboxConfig({
        SANDBOX_PORT: '0',
        SANDBOX_HOST: '0.0.0.0',
        SANDBOX_ELEVENLABS_LIMIT: '3',
        SANDBOX_CARTESIA_LIMIT: '5',
        SANDBOX_LATENCY_MS: '',
        SANDBOX_CLONE_BUDGET: '8',
        SANDBOX_CLONE_BUDGET_PERIOD_SECONDS: '',
      }),
    ).toEqual({
      port: 0,
      host: '0.0.0.0',
      voiceLimit: { elevenlabs: 3, cartesia: 5 },
      latencyMs: 0,
      cloneBudget: { limit: 8, periodSeconds: undefined },
    });
  });

  it('falls back to SANDBOX_VOICE_LIMIT for ElevenLabs', () => {
    expect(loadSandboxConfig({ SANDBOX_VOICE_LIMIT: '4' }).voiceLimit.elevenlabs).toBe(4);
    expect(
      loadSandboxConfig({ SANDBOX_VOICE_LIMIT: '4', SANDBOX_ELEVENLABS_LIMIT: '6' }).voiceLimit
        .elevenlabs,
    ).toBe(6);
  });

  it('names every bad variable at once', () => {
    const load = () =>
      loadSandboxConfig({
        SANDBOX_PORT: '70000',
        SANDBOX_ELEVENLABS_LIMIT: 'ten',
        SANDBOX_CARTESIA_LIMIT: '-1',
        SANDBOX_LATENCY_MS: '1.5',
      });
    expect(load).toThrow(ConfigError);
    let message = '';
    try {
      load();
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of [
      'SANDBOX_PORT',
      'SANDBOX_ELEVENLABS_LIMIT',
      'SANDBOX_CARTESIA_LIMIT',
      'SANDBOX_LATENCY_MS',
    ]) {
      expect(message).toContain(name);
    }
  });
});
