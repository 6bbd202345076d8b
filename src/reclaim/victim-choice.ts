import type { ProviderName } from '../config/app-config';
import type { CloneAllowance } from '../policy/clone-budget';
import {
  decide,
  idleVictims,
  type PolicyName,
  type ProtectionRules,
} from '../policy/reclaim-policy';
import type { ReclaimRepository, Victim, VictimSnapshot } from './reclaim.repository';

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
 * A snapshot from the repository's memory that proves stale (a chosen voice changed since it was
 * read) is decided once more on a full read; the backlog's need, counted under the lock, already
 * counts the first attempt's victims, so the second takes only what is still missing.
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
  let snap = await repo.snapshot(provider, opts.max);
  let choice = await decideAndMark(repo, provider, snap, opts, opts.max);
  const victims = [...choice.victims];
  if (choice.stale > 0 && snap.cached && victims.length < opts.max) {
    snap = await repo.snapshot(provider, opts.max, { fresh: true });
    const taken = new Set(victims.map((v) => v.voiceId));
    choice = await decideAndMark(repo, provider, snap, opts, opts.max - victims.length, taken);
    victims.push(...choice.victims);
  }
  return {
    victims,
    wakeAt: choice.wakeAt,
    wakeInMs: choice.wakeAt === null ? null : choice.wakeAt - snap.now,
  };
}

async function decideAndMark(
  repo: ReclaimRepository,
  provider: ProviderName,
  snap: VictimSnapshot,
  opts: { rules: ProtectionRules; allowance: CloneAllowance; policy?: PolicyName },
  max: number,
  taken: ReadonlySet<string> = new Set(),
) {
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
  const chosen = decision.evict
    .filter((id) => !taken.has(id))
    .slice(0, max)
    .flatMap((id) => byId.get(id) ?? []);
  const { victims, stale } = await repo.markChosen(provider, chosen, {
    mode: 'backlog',
    first: opts.allowance.first,
    reclone: opts.allowance.reclone,
  });
  return { victims, stale, wakeAt: decision.wakeAt };
}

/**
 * The cost saver (RECLAIM_MAX_IDLE_SECONDS): the policy's idle victims on the same snapshot,
 * marked by the same locked statement (without the backlog's cap), on a full read of the ready
 * voices: it runs once per tick, and a missed voice would wait a whole tick.
 */
export async function chooseIdleVictims(
  repo: ReclaimRepository,
  provider: ProviderName,
  opts: { rules: ProtectionRules; maxIdleMs: number; max: number },
): Promise<Victim[]> {
  const snap = await repo.snapshot(provider, 0, { fresh: true });
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
