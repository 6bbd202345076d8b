import {
  Column,
  CreateDateColumn,
  Entity,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import type { ProviderName } from '../config/app-config';
import {
  VOICE_EVENT_REASONS,
  VOICE_EVENT_TYPES,
  VOICE_STATUSES,
  type VoiceEventReason,
  type VoiceEventType,
  type VoiceStatus,
} from '../voice/voice-status';
import { PROVIDER_NAMES } from '../config/app-config';

// Entities mirror the migration exactly; the schema itself is owned by migrations, never synchronize.

@Entity({ name: 'voices' })
export class VoiceEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text', { name: 'user_id' }) userId!: string;
  @Column('text') name!: string;
  @Column({ type: 'enum', enumName: 'provider_name', enum: PROVIDER_NAMES })
  provider!: ProviderName;
  @Column('text', { nullable: true }) language!: string | null;
  @Column({ type: 'enum', enumName: 'voice_status', enum: VOICE_STATUSES }) status!: VoiceStatus;
  /** Bumped on every claim or take-over; a job carrying an older token is stale and does nothing. */
  @Column('bigint', { name: 'fencing_token' }) fencingToken!: string;
  @Column('int') attempts!: number;
  @Column('int', { name: 'remote_tries' }) remoteTries!: number;
  /** Start tag of start-time fair queuing: the claim order across users of one provider. */
  @Column('bigint', { name: 'fair_tag', nullable: true }) fairTag!: string | null;
  @Column('timestamptz', { name: 'queued_at', nullable: true }) queuedAt!: Date | null;
  @Column('timestamptz', { name: 'claimed_at', nullable: true }) claimedAt!: Date | null;
  @Column('timestamptz', { name: 'allocation_lease_expires_at', nullable: true })
  allocationLeaseExpiresAt!: Date | null;
  @Column('timestamptz', { name: 'lease_expires_at', nullable: true }) leaseExpiresAt!: Date | null;
  @Column('timestamptz', { name: 'last_used_at', nullable: true }) lastUsedAt!: Date | null;
  @Column('timestamptz', { name: 'ready_at', nullable: true }) readyAt!: Date | null;
  @Column('int', { name: 'use_count' }) useCount!: number;
  @Column('int', { name: 'session_count' }) sessionCount!: number;
  @Column('timestamptz', { name: 'first_used_at', nullable: true }) firstUsedAt!: Date | null;
  @Column('text', { name: 'remote_voice_id', nullable: true }) remoteVoiceId!: string | null;
  /** A remote voice may still exist for a voice that no longer holds a slot: it keeps counting. */
  @Column('boolean', { name: 'remote_cleanup_pending' }) remoteCleanupPending!: boolean;
  /** Set when the voice is deleted, cleared once its sample is gone; when to try next. */
  @Column('timestamptz', { name: 'sample_removal_due_at', nullable: true })
  sampleRemovalDueAt!: Date | null;
  @Column('int', { name: 'sample_removal_attempts' }) sampleRemovalAttempts!: number;
  @Column('jsonb', { name: 'upload_probe', nullable: true })
  uploadProbe!: Record<string, unknown> | null;
  @Column('text', { name: 'sample_key' }) sampleKey!: string;
  @Column('text', { name: 'sample_content_type' }) sampleContentType!: string;
  @Column('text', { name: 'sample_filename' }) sampleFilename!: string;
  @Column('bigint', { name: 'sample_size_bytes' }) sampleSizeBytes!: string;
  @Column('text', { name: 'sample_sha256' }) sampleSha256!: string;
  @Column('text', { name: 'sample_format', nullable: true }) sampleFormat!: string | null;
  @Column('int', { name: 'sample_duration_ms', nullable: true }) sampleDurationMs!: number | null;
  @Column('int', { name: 'sample_rate', nullable: true }) sampleRate!: number | null;
  @Column('int', { name: 'sample_channels', nullable: true }) sampleChannels!: number | null;
  @Column('text', { name: 'failure_code', nullable: true }) failureCode!: string | null;
  @Column('text', { name: 'failure_message', nullable: true }) failureMessage!: string | null;
  @Column('jsonb', { name: 'trace_context', nullable: true })
  traceContext!: Record<string, string> | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

@Entity({ name: 'voice_events' })
export class VoiceEventEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) id!: string;
  @Column('uuid', { name: 'voice_id' }) voiceId!: string;
  @Column({ type: 'enum', enumName: 'voice_event_type', enum: VOICE_EVENT_TYPES })
  type!: VoiceEventType;
  @Column({ type: 'enum', enumName: 'voice_event_reason', enum: VOICE_EVENT_REASONS })
  reason!: VoiceEventReason;
  @Column({
    type: 'enum',
    enumName: 'voice_status',
    enum: VOICE_STATUSES,
    name: 'from_status',
    nullable: true,
  })
  fromStatus!: VoiceStatus | null;
  @Column({ type: 'enum', enumName: 'voice_status', enum: VOICE_STATUSES, name: 'to_status' })
  toStatus!: VoiceStatus;
  @Column('jsonb') metadata!: Record<string, unknown>;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

@Entity({ name: 'providers' })
export class ProviderEntity {
  @PrimaryColumn({ type: 'enum', enumName: 'provider_name', enum: PROVIDER_NAMES })
  name!: ProviderName;
  @Column('int', { name: 'configured_limit', nullable: true }) configuredLimit!: number | null;
  @Column('int', { name: 'account_limit', nullable: true }) accountLimit!: number | null;
  @Column('int', { name: 'foreign_count' }) foreignCount!: number;
  @Column('bigint', { name: 'virtual_time' }) virtualTime!: string;
  @Column('timestamptz', { name: 'account_checked_at', nullable: true })
  accountCheckedAt!: Date | null;
  @Column('timestamptz', { name: 'last_claim_at', nullable: true }) lastClaimAt!: Date | null;
  @Column('double precision', { name: 'claim_interval_ms', nullable: true })
  claimIntervalMs!: number | null;
  @Column('text', { name: 'breaker_state' }) breakerState!: 'closed' | 'open' | 'half_open';
  @Column('int', { name: 'breaker_failures' }) breakerFailures!: number;
  @Column('timestamptz', { name: 'breaker_opened_at', nullable: true })
  breakerOpenedAt!: Date | null;
  @Column('timestamptz', { name: 'breaker_probe_until', nullable: true })
  breakerProbeUntil!: Date | null;
  @Column('uuid', { name: 'breaker_probe_voice', nullable: true }) breakerProbeVoice!:
    string | null;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

/** A provider account's clone budget (see the clone-budget migration). */
@Entity({ name: 'provider_accounts' })
export class ProviderAccountEntity {
  @PrimaryColumn({ type: 'enum', enumName: 'provider_name', enum: PROVIDER_NAMES })
  provider!: ProviderName;
  @PrimaryColumn('text') account!: string;
  @Column('int', { name: 'budget_configured', nullable: true }) budgetConfigured!: number | null;
  @Column('int', { name: 'budget_published', nullable: true }) budgetPublished!: number | null;
  @Column('int', { name: 'budget_used' }) budgetUsed!: number;
  @Column('bigint', { name: 'clones_total' }) clonesTotal!: string;
  @Column('bigint', { name: 'clones_at_read' }) clonesAtRead!: string;
  @Column('timestamptz', { name: 'budget_resets_at', nullable: true })
  budgetResetsAt!: Date | null;
  @Column('text', { name: 'budget_reset_source', nullable: true })
  budgetResetSource!: 'provider' | 'configured' | null;
  @Column('timestamptz', { name: 'budget_exhausted_until', nullable: true })
  budgetExhaustedUntil!: Date | null;
  @Column('timestamptz', { name: 'budget_checked_at', nullable: true })
  budgetCheckedAt!: Date | null;
  @Column('boolean', { name: 'budget_spent_noted' }) budgetSpentNoted!: boolean;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

export const ENTITIES = [VoiceEntity, VoiceEventEntity, ProviderEntity, ProviderAccountEntity];
