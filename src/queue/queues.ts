import type { ProviderName } from '../config/app-config';
import type { TraceCarrier } from '../observability/trace-context';

/** Every Bull queue of the service. Allocation has one queue per provider, so one provider's
 * backlog or outage never holds up another's jobs. */
export enum QueueName {
  Metadata = 'metadata',
  AllocationElevenLabs = 'allocation-elevenlabs',
  AllocationCartesia = 'allocation-cartesia',
  Maintenance = 'maintenance',
}

export const ALLOCATION_QUEUE: Record<ProviderName, QueueName> = {
  elevenlabs: QueueName.AllocationElevenLabs,
  cartesia: QueueName.AllocationCartesia,
};

export enum JobName {
  ExtractMetadata = 'extract-metadata',
  Allocate = 'allocate',
  RemoteCleanup = 'remote-cleanup',
  Reclaim = 'reclaim',
  Reconcile = 'reconcile',
}

/**
 * Job payloads carry identifiers only: never secrets, never sample bytes. Postgres holds the truth;
 * a job is a hint to act on it, checked against the voice's state and fencing token.
 */
export interface JobPayloads {
  [JobName.ExtractMetadata]: { voiceId: string; trace?: TraceCarrier };
  [JobName.Allocate]: { voiceId: string; fencingToken: string; trace?: TraceCarrier };
  [JobName.RemoteCleanup]: { voiceId: string };
  [JobName.Reclaim]: { voiceId: string; fencingToken: string };
  [JobName.Reconcile]: { provider: ProviderName };
}

/** Backoff strategy name registered on allocation queues: exponential, full jitter, Retry-After. */
export const RETRY_BACKOFF = 'provider-backoff';
