import type { ProviderName } from '../config/app-config';
import type { CloneAllowance } from '../policy/clone-budget';
import {
  decide,
  idleVictims,
  type PolicyName,
  type ProtectionRules,
} from '../policy/reclaim-policy';
import type { ReclaimRepository, Victim } from './reclaim.repository';

export interface VictimChoice {
  victims: Victim[];
  /** When asking again could free a slot for the voices still waiting (epoch ms, Postgres clock). */
  wakeAt: number | null;
  /** Milliseconds from the snapshot's own clock to wakeAt. */
  wakeInMs: number | null;
}

/**
 * Reclaim for a backlog: the pure policy decides on a snapshot of the provider (src/policy), and
 * the provider-locked statement applies its choice atomically, taking no more than the backlog
 * still needs and no voice whose state changed since the snapshot. The rules that protect users
 * (activation lease, minimum residency, idle threshold, the clone budget) live in the policy only.
 */
export async function chooseVictims(
  repo: ReclaimRepository,
  provider: ProviderName,
  opts: {
    rules: ProtectionRules;
    allowance: CloneAllowance;
    /** Victims per call at most. */
    max: number;
    policy?: PolicyName;
  },
): Promise<VictimChoice> {
  const snap = await repo.snapshot(provider, opts.max);
  const decision = decide(opts.policy ?? 'service', {
    now: snap.now,
    slots: snap.slots,
    held: snap.held.map((h) => h.voice),
    busy: snap.busy,
    waiting: snap.waiting,
    allowance: opts.allowance,
    rules: opts.rules,
  });
  const byId = new Map(snap.held.map((h) => [h.id, h]));
  const chosen = decision.evict.slice(0, opts.max).flatMap((id) => byId.get(id) ?? []);
  const victims = await repo.markVictims(provider, chosen, {
    mode: 'backlog',
    first: opts.allowance.first,
    reclone: opts.allowance.reclone,
  });
  return {
    victims,
    wakeAt: decision.wakeAt,
    wakeInMs: decision.wakeAt === null ? null : decision.wakeAt - snap.now,
  };
}

/**
 * The cost saver (RECLAIM_MAX_IDLE_SECONDS): the policy's idle victims on the same snapshot,
 * marked by the same locked statement (without the backlog's cap).
 */
export async function chooseIdleVictims(
  repo: ReclaimRepository,
  provider: ProviderName,
  opts: { rules: ProtectionRules; maxIdleMs: number; max: number },
): Promise<Victim[]> {
  const snap = await repo.snapshot(provider, 0);
  const ids = idleVictims(
    snap.held.map((h) => h.voice),
    opts.rules,
    opts.maxIdleMs,
    snap.now,
    opts.max,
  );
  if (!ids.length) return [];
  const byId = new Map(snap.held.map((h) => [h.id, h]));
  return repo.markVictims(
    provider,
    ids.flatMap((id) => byId.get(id) ?? []),
    { mode: 'idle' },
  );
}

export { UNLIMITED_CLONES } from '../policy/clone-budget';
