import type { ProviderName } from '../../config/app-config';
import type { ProviderFaults, SandboxConfigPatch } from './control-schemas';

/** The sandbox's public shapes: how it is started and what it reports back. */

export const SANDBOX_PROVIDERS = ['elevenlabs', 'cartesia'] as const satisfies ProviderName[];
export const SANDBOX_OPERATIONS = ['create', 'delete', 'get', 'list', 'account'] as const;
export type SandboxOperation = (typeof SANDBOX_OPERATIONS)[number];

export interface SandboxOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** ElevenLabs default 10, Cartesia default 100. */
  voiceLimit?: { elevenlabs?: number; cartesia?: number };
  /** Added to every provider request. */
  latencyMs?: number;
  faults?: SandboxConfigPatch['faults'];
  seed?: number;
  /** ElevenLabs' clone budget; default 1,000,000 per 30 days, so nothing else notices it. */
  cloneBudget?: { limit?: number | null; periodSeconds?: number };
  /** See SandboxConfigPatch.serviceLimit. */
  serviceLimit?: { elevenlabs?: number; cartesia?: number };
}

export interface SandboxCloneBudgetView {
  limit: number | null;
  used: number;
  /** When the counter next returns to 0 (ISO-8601). */
  resetsAt: string;
  periodSeconds: number;
}

export interface SandboxConfigView {
  latencyMs: number;
  voiceLimit: Record<ProviderName, number>;
  cloneBudget: { elevenlabs: SandboxCloneBudgetView };
  faults: Record<ProviderName, ProviderFaults>;
  seed: number;
  serviceLimit: Record<ProviderName, number | null>;
}

export interface SandboxVoice {
  id: string;
  name: string;
  description: string;
  labels: Record<string, string>;
  category: string;
  language: string | null;
  /** The key from labels.vs_key or the description's `vs_key:`, null for a foreign voice. */
  idempotencyKey: string | null;
  createdAt: string;
  sampleBytes: number;
  /** Added through the control API rather than by a create. */
  foreign: boolean;
}

export interface SandboxProviderState {
  voices: SandboxVoice[];
  /** Voices taking a slot now. */
  held: number;
  limit: number;
  /** The most voices held at once since the last reset. */
  maxHeld: number;
  voiceLimitReachedCount: number;
  /** Creates refused with voice_add_edit_limit_reached. */
  budgetRefusedCount: number;
  /** Voices created through the API, including those whose answer was lost. */
  createCount: number;
  /** Create requests received, whatever became of them. */
  createAttempts: number;
  deleteCount: number;
  /** Idempotency keys carried by more than one live voice: each is a double clone. */
  duplicateKeys: string[];
  /**
   * Fault accounting recorded as it happens, so a condition that did not last until the state is
   * read still counts. The most voices held beyond the service's limit at any moment (0 without
   * a serviceLimit):
   */
  maxOverServiceLimit: number;
  /** Every moment a create made a second live voice with a key that already had one. */
  duplicatesEverAlive: Array<{ key: string; at: string }>;
  /** Deletes through the API, since the last reconciliation mark, of voices carrying our key. */
  keyedDeletesSinceMark: number | null;
  requests: Record<SandboxOperation, number>;
  faultsInjected: { error5xx: number; rateLimit: number; timeout: number; lostAnswer: number };
  /** Bytes of audio received by creates. */
  bytesReceived: number;
}

export type SandboxState = Record<ProviderName, SandboxProviderState>;
