import { UNLIMITED_CLONES } from '../clone-budget';
import type { HeldVoice, PolicySnapshot, ProtectionRules, WaitingVoice } from '../reclaim-policy';
import { firstUse } from '../voice-usage';

// Shared by the policy's table-driven and property specs.
export const NOW = 10_000_000_000;
export const MIN = 60_000;
export const RULES: ProtectionRules = { minIdleMs: 10 * MIN, minResidencyMs: 2 * MIN };
export const UNLIMITED = UNLIMITED_CLONES;

/** A ready voice idle `idleMin` minutes, resident for a day, no lease, unless told otherwise. */
export function held(id: string, idleMin: number, extra: Partial<HeldVoice> = {}): HeldVoice {
  const lastUsedAt = NOW - idleMin * MIN;
  return {
    id,
    usage: { ...firstUse(lastUsedAt - 86_400_000), lastUsedAt },
    lastUsedAt,
    leaseExpiresAt: null,
    readyAt: NOW - 86_400_000,
    useOrder: -idleMin,
    ...extra,
  };
}

export const waiter = (id: string, clonedBefore = false): WaitingVoice => ({
  id,
  clonedBefore,
  queuedAt: NOW,
});

export function snapshot(over: Partial<PolicySnapshot>): PolicySnapshot {
  return {
    now: NOW,
    slots: 2,
    held: [],
    busy: 0,
    waiting: [],
    allowance: UNLIMITED,
    rules: RULES,
    ...over,
  };
}
