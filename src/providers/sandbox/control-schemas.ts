import { z } from 'zod';

/**
 * What the control API (/_sandbox/*, or the handle's methods) accepts, checked strictly so that a
 * typo in a test's patch is refused rather than silently ignored.
 */

const rate = z.number().min(0).max(1);
const faultRatesSchema = z.strictObject({
  /** Answer 500. */
  error5xx: rate.optional(),
  /** Answer 429 with the provider's throttling code. */
  rateLimit: rate.optional(),
  /** Retry-After (seconds) sent with the 429s; none when absent. */
  retryAfterSeconds: z.number().int().min(0).optional(),
  /** Hold the request unanswered, then drop the connection. */
  timeout: rate.optional(),
  /** How long a timeout holds, default 60 s (or until close). */
  timeoutMs: z.number().int().min(0).optional(),
  /** Do the work (a create creates the voice), then destroy the socket without an answer. */
  lostAnswer: rate.optional(),
});
export type FaultRates = z.infer<typeof faultRatesSchema>;

const providerFaultsSchema = z.strictObject({
  create: faultRatesSchema.optional(),
  delete: faultRatesSchema.optional(),
  get: faultRatesSchema.optional(),
  list: faultRatesSchema.optional(),
  account: faultRatesSchema.optional(),
  /** Applies to every operation; an operation's own entry wins field by field. */
  any: faultRatesSchema.optional(),
});
export type ProviderFaults = z.infer<typeof providerFaultsSchema>;

const limit = z.number().int().min(0);
/** ElevenLabs' add/edit budget: every clone spends one, a delete gives nothing back. */
const cloneBudgetPatchSchema = z.strictObject({
  /** max_voice_add_edits; null publishes no budget. */
  limit: limit.nullable().optional(),
  /** Sets voice_add_edit_counter, e.g. to make it jump as if someone else spent it. */
  used: limit.optional(),
  /** Moves the next reset (and the counter's zeroing) to this many seconds from now. */
  resetInSeconds: z.number().positive().optional(),
  /** Length of a billing cycle; each reset schedules the next one this far ahead. */
  periodSeconds: z.number().positive().optional(),
});
export type CloneBudgetPatch = z.infer<typeof cloneBudgetPatchSchema>;
export const sandboxConfigPatchSchema = z.strictObject({
  latencyMs: z.number().int().min(0).optional(),
  voiceLimit: z
    .strictObject({ elevenlabs: limit.optional(), cartesia: limit.optional() })
    .optional(),
  cloneBudget: z.strictObject({ elevenlabs: cloneBudgetPatchSchema.optional() }).optional(),
  /** Replaces the faults of each provider named; `{}` clears them. */
  faults: z
    .strictObject({
      elevenlabs: providerFaultsSchema.optional(),
      cartesia: providerFaultsSchema.optional(),
    })
    .optional(),
  /** Reseeds the fault dice, for a reproducible run. */
  seed: z.number().int().optional(),
  /**
   * The limit the service is configured with, when the account's own limit is set higher so
   * that an over-claim is accepted here and recorded (maxOverServiceLimit) instead of refused.
   */
  serviceLimit: z
    .strictObject({ elevenlabs: limit.optional(), cartesia: limit.optional() })
    .optional(),
});
export type SandboxConfigPatch = z.infer<typeof sandboxConfigPatchSchema>;

export const foreignVoiceSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** ElevenLabs only; `premade` voices take no slot. */
  category: z.enum(['premade', 'cloned', 'generated', 'professional']).optional(),
});
export type ForeignVoiceInput = z.infer<typeof foreignVoiceSchema>;

/** A control request the sandbox refuses; the server answers it with this status and issues. */
export class SandboxError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly issues?: unknown,
  ) {
    super(message);
  }
}
