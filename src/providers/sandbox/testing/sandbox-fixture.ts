export { caught } from '../../testing/caught';
import { randomBytes } from 'node:crypto';
import { CartesiaProvider } from '../../cartesia.provider';
import { ElevenLabsProvider } from '../../elevenlabs.provider';
import { memorySample } from '../../testing/stub-server';
import type { VoiceProvider } from '../../voice-provider.port';
import type { SandboxHandle, SandboxOptions } from '../sandbox-server';

/**
 * What the sandbox's specs share: small limits so that "full" is three creates away, the real
 * adapters pointed at the sandbox (small pages, so listing crosses pages), and a sample.
 */
export const SPEC_SANDBOX: SandboxOptions = {
  port: 0,
  voiceLimit: { elevenlabs: 3, cartesia: 4 },
  seed: 7,
};

export function adaptersFor(sandbox: SandboxHandle): {
  el: ElevenLabsProvider;
  car: CartesiaProvider;
} {
  return {
    el: new ElevenLabsProvider({
      baseUrl: sandbox.baseUrl('elevenlabs'),
      apiKey: 'any',
      pageSize: 2,
      timeoutMs: 3000,
    }),
    car: new CartesiaProvider({
      baseUrl: sandbox.baseUrl('cartesia'),
      apiKey: 'any',
      version: '2025-11-04',
      pageSize: 2,
      timeoutMs: 3000,
    }),
  };
}

export const audio = randomBytes(64_000);
export const req = (key: string, data: Buffer = audio) => ({
  name: `voice ${key}`,
  idempotencyKey: key,
  sample: memorySample(data),
});

/** Every voice id, page by page; a list that fits one page would not test the cursor. */
export async function listAll(p: VoiceProvider): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await p.listVoices(cursor);
    ids.push(...page.voices.map((v) => v.remoteVoiceId));
    cursor = page.nextCursor;
    pages++;
  } while (cursor);
  if (pages < 2) throw new Error(`expected more than one page, got ${pages}`);
  return ids;
}
