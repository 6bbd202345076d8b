export const VOICE_STATUSES = [
  'pending',
  'queued',
  'allocating',
  'ready',
  'reclaiming',
  'reclaimed',
  'failed',
  'deleted',
] as const;
export type VoiceStatus = (typeof VOICE_STATUSES)[number];

/**
 * Every transition a voice may make: ARCHITECTURE.md's state diagram, plus what the code makes on
 * purpose beyond it. Beyond the diagram: a voice may be deleted from any state but deleted (the
 * delete fences an allocation in flight and leaves the slot counted until its remote voice is
 * gone); `allocating -> allocating` keeps a claim across a wait (retry, open breaker) or hands it
 * to the sweeper; `ready -> ready` renews an activation lease; `ready -> reclaimed` is
 * reconciliation finding the remote voice gone. Every write of a voice's status checks this table
 * (VoiceRepository.transition before it writes; the claim statements at load).
 */
export const VOICE_TRANSITIONS = {
  pending: ['queued', 'failed', 'deleted'],
  queued: ['allocating', 'deleted'],
  allocating: ['allocating', 'ready', 'queued', 'failed', 'deleted'],
  ready: ['ready', 'reclaiming', 'reclaimed', 'deleted'],
  reclaiming: ['reclaimed', 'deleted'],
  reclaimed: ['queued', 'deleted'],
  failed: ['queued', 'deleted'],
  deleted: [],
} as const satisfies Record<VoiceStatus, readonly VoiceStatus[]>;

export function mayTransition(from: VoiceStatus, to: VoiceStatus): boolean {
  return (VOICE_TRANSITIONS[from] as readonly VoiceStatus[]).includes(to);
}

/** The states a voice may reach `to` from. */
export function sourcesOf(to: VoiceStatus): VoiceStatus[] {
  return VOICE_STATUSES.filter((from) => mayTransition(from, to));
}

/** Throws unless every one of `from` may go to `to`: a programming error, never a lost race. */
export function assertTransition(from: readonly VoiceStatus[], to: VoiceStatus): void {
  for (const f of from) {
    if (!mayTransition(f, to)) throw new Error(`voice transition not allowed: ${f} -> ${to}`);
  }
}

/** States in which a voice occupies (or may occupy) a slot on its provider's account. */
export const HOLDING_STATUSES: readonly VoiceStatus[] = ['allocating', 'ready', 'reclaiming'];

/** Event types and reasons are enums in Postgres too, so they cannot drift into free strings. */
export const VOICE_EVENT_TYPES = [
  'uploaded',
  'metadata_ok',
  'metadata_failed',
  'claimed',
  'attempt_failed',
  'ready',
  'requeued',
  'failed',
  'activated',
  'reclaiming',
  'reclaimed',
  'deleted',
  'remote_deleted',
  'retried',
  'adopted',
  'orphan_deleted',
  'remote_missing',
] as const;
export type VoiceEventType = (typeof VOICE_EVENT_TYPES)[number];

export const VOICE_EVENT_REASONS = [
  'upload',
  'metadata_valid',
  'sample_unreadable',
  'sample_too_short',
  'sample_too_long',
  'slot_free',
  'remote_created',
  'remote_adopted',
  'provider_retryable',
  'provider_capacity',
  'provider_budget',
  'provider_fatal',
  'attempts_exhausted',
  'lease_expired',
  'activation',
  'idle_reclaim',
  'remote_missing',
  'user_delete',
  'admin_retry',
  'stale_create_compensated',
  'reconciliation',
] as const;
export type VoiceEventReason = (typeof VOICE_EVENT_REASONS)[number];
