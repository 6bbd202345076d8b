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
