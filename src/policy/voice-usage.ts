/**
 * A voice's use history, summarised in a few numbers so the service can keep it as columns of the
 * voice's row (README "The reclaim policy"): the reclaim policy needs how often a voice's
 * sessions come, not every timestamp. Pure: the caller passes the time. The history survives a
 * reclaim (it is the voice's, not the slot's), so a re-cloned voice comes back with its record:
 * the "ghost" history that frequency policies keep of evicted entries.
 *
 * A session is a run of activations less than `SESSION_GAP_MS` apart (one conversation). What
 * predicts a voice's next use is how often its sessions come; activations inside a session say
 * little beyond "in use now", which recency and the activation lease cover.
 */

/** Activations closer than this belong to one session (30 min, well above a think time). */
export const SESSION_GAP_MS = 30 * 60 * 1000;

export interface VoiceUsage {
  /** Activations ever (column `use_count`). */
  uses: number;
  /** Sessions ever (column `session_count`). */
  sessions: number;
  /** Epoch ms of the voice's first activation (column `first_used_at`). */
  firstUsedAt: number;
  /** Epoch ms of the latest activation (the existing `last_used_at`). */
  lastUsedAt: number;
}

/** The history of a voice at its first activation. */
export function firstUse(now: number): VoiceUsage {
  return { uses: 1, sessions: 1, firstUsedAt: now, lastUsedAt: now };
}

/** The history after one more activation at `now` (a time before `lastUsedAt` counts as it). */
export function recordUse(usage: VoiceUsage, now: number): VoiceUsage {
  const next = { ...usage };
  recordUseInPlace(next, now);
  return next;
}

/** In-place variant for the replay's hot loop (a million activations); same arithmetic. */
export function recordUseInPlace(usage: VoiceUsage, now: number): void {
  const at = Math.max(now, usage.lastUsedAt);
  if (at - usage.lastUsedAt >= SESSION_GAP_MS) usage.sessions++;
  usage.uses++;
  usage.lastUsedAt = at;
}
