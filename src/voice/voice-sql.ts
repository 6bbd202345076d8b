import { SESSION_GAP_MS } from '../policy/voice-usage';

/** Columns a transition may set, by domain name; values are parameters unless given as SQL. */
export const SETTABLE = {
  attempts: 'attempts',
  remoteTries: 'remote_tries',
  fairTag: 'fair_tag',
  queuedAt: 'queued_at',
  allocationLeaseExpiresAt: 'allocation_lease_expires_at',
  leaseExpiresAt: 'lease_expires_at',
  lastUsedAt: 'last_used_at',
  readyAt: 'ready_at',
  useCount: 'use_count',
  sessionCount: 'session_count',
  firstUsedAt: 'first_used_at',
  remoteVoiceId: 'remote_voice_id',
  remoteCleanupPending: 'remote_cleanup_pending',
  sampleRemovalDueAt: 'sample_removal_due_at',
  sampleFormat: 'sample_format',
  sampleDurationMs: 'sample_duration_ms',
  sampleRate: 'sample_rate',
  sampleChannels: 'sample_channels',
  failureCode: 'failure_code',
  failureMessage: 'failure_message',
} as const;
export type Settable = keyof typeof SETTABLE;

/** A raw SQL expression for a SET clause, e.g. `sql('now()')`. Only ever built from literals. */
export class Sql {
  constructor(readonly text: string) {}
}
export const sql = (text: string): Sql => new Sql(text);
/**
 * The use history an activation at `at` (SQL) adds, as `recordUse` in src/policy/voice-usage.ts
 * computes it: one more use, a new session after a gap of SESSION_GAP_MS (or at the first use).
 * In SQL so the activation's own row update keeps it, without reading the row first; the
 * arithmetic is checked against recordUse in test/slots.int-spec.ts.
 */
export function usageSet(at: string): Record<'useCount' | 'sessionCount' | 'firstUsedAt', Sql> {
  const gap = `interval '${Math.trunc(SESSION_GAP_MS / 1000)} seconds'`;
  return {
    useCount: new Sql('v.use_count + 1'),
    sessionCount: new Sql(
      `v.session_count + CASE WHEN v.session_count = 0 OR v.last_used_at IS NULL OR ${at} - v.last_used_at >= ${gap} THEN 1 ELSE 0 END`,
    ),
    firstUsedAt: new Sql(`COALESCE(v.first_used_at, ${at})`),
  };
}

/** `now() + n seconds` as SQL; n is a number, so nothing from outside reaches the text. */
export const secondsFromNow = (seconds: number): Sql =>
  new Sql(`now() + interval '${Math.trunc(seconds)} seconds'`);
