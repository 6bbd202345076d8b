import { z } from 'zod';
import { ConfigError } from './app-config';

/** An unset variable and an empty one mean the same: the default. */
const blankIsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const count = z.preprocess(blankIsUnset, z.coerce.number().int().min(0).optional());

const schema = z.object({
  SANDBOX_PORT: z.preprocess(blankIsUnset, z.coerce.number().int().min(0).max(65535).default(4010)),
  SANDBOX_HOST: z.preprocess(blankIsUnset, z.string().default('127.0.0.1')),
  SANDBOX_ELEVENLABS_LIMIT: count,
  SANDBOX_CARTESIA_LIMIT: count,
  /** The app's older single knob; SANDBOX_ELEVENLABS_LIMIT wins when both are set. */
  SANDBOX_VOICE_LIMIT: count,
  SANDBOX_LATENCY_MS: z.preprocess(blankIsUnset, z.coerce.number().int().min(0).default(0)),
  SANDBOX_CLONE_BUDGET: count,
  SANDBOX_CLONE_BUDGET_PERIOD_SECONDS: z.preprocess(
    blankIsUnset,
    z.coerce.number().positive().optional(),
  ),
});

export interface SandboxConfig {
  port: number;
  host: string;
  voiceLimit: { elevenlabs: number; cartesia: number };
  latencyMs: number;
  /** ElevenLabs' clone budget (max_voice_add_edits) and billing cycle; defaults when unset. */
  cloneBudget: { limit?: number; periodSeconds?: number };
}

/**
 * Settings of the standalone provider sandbox (`npm run sandbox`). Throws a ConfigError naming
 * every bad variable at once, like the application's own configuration.
 */
export function loadSandboxConfig(env: NodeJS.ProcessEnv = process.env): SandboxConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid sandbox configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    port: e.SANDBOX_PORT,
    host: e.SANDBOX_HOST,
    voiceLimit: {
      elevenlabs: e.SANDBOX_ELEVENLABS_LIMIT ?? e.SANDBOX_VOICE_LIMIT ?? 10,
      cartesia: e.SANDBOX_CARTESIA_LIMIT ?? 100,
    },
    latencyMs: e.SANDBOX_LATENCY_MS,
    cloneBudget: {
      limit: e.SANDBOX_CLONE_BUDGET,
      periodSeconds: e.SANDBOX_CLONE_BUDGET_PERIOD_SECONDS,
    },
  };
}
