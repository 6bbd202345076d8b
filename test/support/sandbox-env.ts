import type { SandboxHandle } from '../../src/providers/sandbox/sandbox-server';

/** The environment that points both provider adapters at a sandbox, as at real base URLs. */
export function sandboxEnv(sandbox: SandboxHandle): Record<string, string> {
  return {
    ELEVENLABS_BASE_URL: sandbox.baseUrl('elevenlabs'),
    ELEVENLABS_API_KEY: 'test-elevenlabs-key',
    CARTESIA_BASE_URL: sandbox.baseUrl('cartesia'),
    CARTESIA_API_KEY: 'test-cartesia-key',
  };
}
