import type { AudioInfo } from './audio-probe';
import type { ProviderName } from '../config/app-config';
import type { VoiceStatus } from './voice-status';

/** The domain view of a voice, mapped from its row; services work with this, never with rows. */
export interface Voice {
  id: string;
  userId: string;
  name: string;
  provider: ProviderName;
  language: string | null;
  status: VoiceStatus;
  fencingToken: string;
  attempts: number;
  remoteTries: number;
  fairTag: string | null;
  queuedAt: Date | null;
  /** When the current allocation claimed its slot. */
  claimedAt: Date | null;
  allocationLeaseExpiresAt: Date | null;
  leaseExpiresAt: Date | null;
  lastUsedAt: Date | null;
  readyAt: Date | null;
  remoteVoiceId: string | null;
  remoteCleanupPending: boolean;
  /** Deleted, and its sample not yet confirmed gone from storage. */
  sampleRemovalPending: boolean;
  /** What the upload's probe read from the sample; null for voices uploaded before it was kept. */
  uploadProbe: AudioInfo | null;
  sample: {
    key: string;
    contentType: string;
    filename: string;
    sizeBytes: number;
    sha256: string;
    format: string | null;
    durationMs: number | null;
    sampleRate: number | null;
    channels: number | null;
  };
  failureCode: string | null;
  failureMessage: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface VoiceRow {
  id: string;
  user_id: string;
  name: string;
  provider: ProviderName;
  language: string | null;
  status: VoiceStatus;
  fencing_token: string;
  attempts: number;
  remote_tries: number;
  fair_tag: string | null;
  queued_at: Date | null;
  claimed_at: Date | null;
  allocation_lease_expires_at: Date | null;
  lease_expires_at: Date | null;
  last_used_at: Date | null;
  ready_at: Date | null;
  remote_voice_id: string | null;
  remote_cleanup_pending: boolean;
  sample_removal_due_at: Date | null;
  sample_key: string;
  sample_content_type: string;
  sample_filename: string;
  sample_size_bytes: string;
  sample_sha256: string;
  sample_format: string | null;
  sample_duration_ms: number | null;
  sample_rate: number | null;
  sample_channels: number | null;
  upload_probe: AudioInfo | null;
  failure_code: string | null;
  failure_message: string | null;
  created_at: Date;
  updated_at: Date;
}

export function voiceFromRow(r: VoiceRow): Voice {
  return {
    id: r.id,
    userId: r.user_id,
    name: r.name,
    provider: r.provider,
    language: r.language,
    status: r.status,
    fencingToken: String(r.fencing_token),
    attempts: r.attempts,
    remoteTries: r.remote_tries,
    fairTag: r.fair_tag === null ? null : String(r.fair_tag),
    queuedAt: r.queued_at,
    claimedAt: r.claimed_at,
    allocationLeaseExpiresAt: r.allocation_lease_expires_at,
    leaseExpiresAt: r.lease_expires_at,
    lastUsedAt: r.last_used_at,
    readyAt: r.ready_at,
    remoteVoiceId: r.remote_voice_id,
    remoteCleanupPending: r.remote_cleanup_pending,
    sampleRemovalPending: r.sample_removal_due_at !== null,
    uploadProbe: r.upload_probe ?? null,
    sample: {
      key: r.sample_key,
      contentType: r.sample_content_type,
      filename: r.sample_filename,
      sizeBytes: Number(r.sample_size_bytes),
      sha256: r.sample_sha256,
      format: r.sample_format,
      durationMs: r.sample_duration_ms,
      sampleRate: r.sample_rate,
      channels: r.sample_channels,
    },
    failureCode: r.failure_code,
    failureMessage: r.failure_message,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
