import type { Readable } from 'node:stream';
import type { ProviderName } from '../config/app-config';

/** A sample as it travels to a provider: a stream, never a whole buffer in memory. */
export interface SampleUpload {
  /** Opens a fresh stream of the sample each time it is called (a retry needs a new one). */
  open(): Promise<Readable>;
  filename: string;
  contentType: string;
  sizeBytes: number;
}

export interface CreateVoiceRequest {
  /** Display name shown in the provider's dashboard. */
  name: string;
  /**
   * The service's idempotency key for this voice. Adapters store it in the remote voice's own
   * metadata (labels / description) so that a later attempt can find a voice created by an attempt
   * whose answer was lost.
   */
  idempotencyKey: string;
  language?: string;
  sample: SampleUpload;
}

export interface RemoteVoice {
  remoteVoiceId: string;
  name: string;
  /** The idempotency key found in the voice's metadata, or null for a foreign voice. */
  idempotencyKey: string | null;
  /** Whether the voice occupies a slot (premade voices do not). */
  countsTowardLimit: boolean;
  createdAt: Date | null;
}

export interface RemoteVoicePage {
  voices: RemoteVoice[];
  /** Opaque cursor for the next page, or null at the end. */
  nextCursor: string | null;
}

export interface AccountLimits {
  /** The account's own voice cap, or null when the provider does not expose one. */
  voiceLimit: number | null;
  /** Slots the provider says are in use, where it says so. */
  voiceSlotsUsed: number | null;
  /**
   * The account's budget of clone operations per billing period, where the provider publishes one
   * (ElevenLabs' add/edit counter); null when it publishes nothing about it.
   */
  cloneBudget: CloneBudgetReading | null;
}

export interface CloneBudgetReading {
  /** Clone (and edit) operations spent this period. */
  used: number;
  /** The period's budget; null when the account has none. */
  limit: number | null;
  /** When the period, and with it the counter, resets; null when not said. */
  resetsAt: Date | null;
}

/**
 * The port every provider adapter implements. Adapters never retry on their own: a retried create
 * can clone the same voice twice, so retries belong to the allocation service, which looks the
 * idempotency key up first. Errors are thrown as ProviderError with a classification.
 */
export abstract class VoiceProvider {
  abstract readonly name: ProviderName;

  /** Clones a voice. Exactly one HTTP request; no hidden retries. */
  abstract createVoice(request: CreateVoiceRequest): Promise<{ remoteVoiceId: string }>;

  /** Deletes a remote voice. A voice that is already gone counts as deleted (no error). */
  abstract deleteVoice(remoteVoiceId: string): Promise<void>;

  /** Reads one remote voice, or null when it does not exist. */
  abstract getVoice(remoteVoiceId: string): Promise<RemoteVoice | null>;

  /** One page of the account's voices that count toward its limit (cloned / owned voices). */
  abstract listVoices(cursor?: string | null): Promise<RemoteVoicePage>;

  /** Finds the voice carrying our idempotency key, or null. May page through the account. */
  abstract findByIdempotencyKey(idempotencyKey: string): Promise<RemoteVoice | null>;

  /** The account's voice limit where the provider exposes one. */
  abstract getAccountLimits(): Promise<AccountLimits>;
}
