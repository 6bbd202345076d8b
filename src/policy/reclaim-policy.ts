/**
 * The reclaim policy as one pure decision (ARCHITECTURE.md "The reclaim policy"): handed a
 * snapshot of one provider account — the voices it holds with their use history, leases and
 * residency, the voices waiting for a slot, the clone budget's allowance, the number of slots and
 * the time — it answers which voices to evict, which waiting voices to clone now, and when to ask
 * again. No I/O and no clock of its own, so the service (inside its provider-locked claim and
 * reclaim) and the replay tool (`npm run replay`, in simulated time) decide exactly alike.
 *
 * The user-protecting rules sit on top of every victim order: a voice under an activation lease,
 * younger than the minimum residency, or used within the idle threshold is never evicted, and a
 * voice is evicted only for a clone that the budget lets out now (invariant 9), so a slot is
 * never emptied for nothing. The victim order among the voices left is what distinguishes the
 * policies: `lru` (least recently used first), `belady` (the offline optimum: furthest next use
 * first, which only the replay can know) and `service` (predicted time to next use from the
 * voice's session history, see `serviceRank`).
 *
 * Times are epoch milliseconds, like clone-budget.ts.
 */
import { mayClone, type CloneAllowance } from './clone-budget';
import type { VoiceUsage } from './voice-usage';

export type PolicyName = 'service' | 'lru' | 'belady';
export const POLICY_NAMES: readonly PolicyName[] = ['service', 'lru', 'belady'];

/** The service's protections (RECLAIM_MIN_IDLE_SECONDS, RECLAIM_MIN_RESIDENCY_SECONDS), in ms. */
export interface ProtectionRules {
  minIdleMs: number;
  minResidencyMs: number;
}

/** Cache semantics (the replay's --pure): nothing is protected. */
export const NO_PROTECTION: ProtectionRules = { minIdleMs: 0, minResidencyMs: 0 };

/** A ready voice holding a slot. */
export interface HeldVoice {
  id: string;
  usage: VoiceUsage;
  /** The voice's `last_used_at`: the end of its latest use (idle time counts from here). */
  lastUsedAt: number;
  /** Epoch ms until which an activation protects it; null when none ever did. */
  leaseExpiresAt: number | null;
  /** When it became ready (residency counts from here). */
  readyAt: number;
  /**
   * Tie-breaker for voices used at the same instant: a counter that grows with every use. The
   * replay sets it so `lru` is exactly textbook LRU; the service may leave it 0 (ties go by id).
   */
  useOrder: number;
  /** Replay only, for `belady`: index of the voice's next activation in the trace (Infinity: none). */
  nextUse?: number;
}

/** A voice waiting for a slot, in the order the service's fair queue would serve it. */
export interface WaitingVoice {
  id: string;
  /** Whether it was cloned before (a re-clone after a reclaim): the budget treats it apart. */
  clonedBefore: boolean;
  queuedAt: number;
}

export interface PolicySnapshot {
  now: number;
  /** Slots of the account available to the service (limit minus foreign voices). */
  slots: number;
  /** Ready voices. */
  held: readonly HeldVoice[];
  /** Slots taken by voices that cannot be evicted now: allocating or reclaiming. */
  busy: number;
  waiting: readonly WaitingVoice[];
  allowance: CloneAllowance;
  rules: ProtectionRules;
}

export interface PolicyDecision {
  /** Ready voices to reclaim now, each for one of `clone`. */
  evict: string[];
  /** Waiting voices to clone now, in order. */
  clone: string[];
  /** Voices to clone ahead of use into idle slots (none yet: see README). */
  warm: string[];
  /**
   * When asking again could change the answer while voices still wait (the first protection ends,
   * the pacing lets a re-clone out, the budget resets); null when nothing waits or only an event
   * (an activation, a finished clone) can help.
   */
  wakeAt: number | null;
}

/** Earliest moment a held voice may be evicted under the rules. */
export function evictableAt(v: HeldVoice, rules: ProtectionRules): number {
  return Math.max(
    v.leaseExpiresAt ?? -Infinity,
    v.lastUsedAt + rules.minIdleMs,
    v.readyAt + rules.minResidencyMs,
  );
}

/** Whether the rules let `v` be evicted at `now`. */
export function isEvictable(v: HeldVoice, rules: ProtectionRules, now: number): boolean {
  // Strictly after the protection ends, as the service's SQL (`lease_expires_at < now()`).
  return v.leaseExpiresAt === null || v.leaseExpiresAt < now
    ? v.lastUsedAt + rules.minIdleMs <= now && v.readyAt + rules.minResidencyMs <= now
    : false;
}

/** Tuning of the service policy; the defaults are the measured choice (README). */
export interface ServiceTuning {
  /** A voice idle less than this is in a session: kept, in LRU order among its peers. */
  sessionMs: number;
  /** Prior of the rate estimate: `priorSessions` sessions over `priorMs`, for newcomers. */
  priorSessions: number;
  priorMs: number;
  /** A voice idle for `d` is expected back no sooner than `overdueFactor` × `d`. */
  overdueFactor: number;
}

export const DEFAULT_SERVICE_TUNING: ServiceTuning = {
  sessionMs: 3 * 60 * 1000,
  priorSessions: 1,
  priorMs: 3 * 24 * 3600 * 1000,
  overdueFactor: 0.5,
};

/**
 * The service policy's victim key: the expected time until the voice's next use (evict the
 * largest), an online stand-in for Belady's "furthest next use". Measured against variants
 * (README): a voice's sessions come roughly as a Poisson process whose rate differs by user, so
 * after a session has ended its recency says little and its rate says most.
 * - In a session (idle less than `sessionMs`, a few think times): its idle time, so it ranks
 *   below every voice out of session and in LRU order among those in session.
 * - Otherwise 1 / its session rate, estimated as (sessions + priorSessions) over (age + priorMs):
 *   the prior puts a newcomer seen once on probation instead of trusting one session, and the age
 *   includes the idle time, so a voice that stops being used decays. But at least
 *   `overdueFactor` × its idle time: a busy voice that stops coming (its user went dormant)
 *   loses its place faster than its long average alone would let it.
 */
export function serviceRank(v: HeldVoice, now: number, tuning: ServiceTuning): number {
  const idle = now - v.usage.lastUsedAt;
  if (idle < tuning.sessionMs) return idle;
  const rate =
    (v.usage.sessions + tuning.priorSessions) / (now - v.usage.firstUsedAt + tuning.priorMs);
  return Math.max(1 / rate, tuning.overdueFactor * idle, tuning.sessionMs);
}

/** A victim order: negative when `a` should be evicted before `b`. */
type Order = (a: HeldVoice, b: HeldVoice) => number;

function byUseThenId(a: HeldVoice, b: HeldVoice): number {
  return a.useOrder - b.useOrder || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The victim order of a policy at `now`. */
export function victimOrder(
  policy: PolicyName,
  now: number,
  tuning = DEFAULT_SERVICE_TUNING,
): Order {
  switch (policy) {
    case 'lru':
      return (a, b) => a.lastUsedAt - b.lastUsedAt || byUseThenId(a, b);
    case 'belady':
      // Never-again voices (Infinity) first; finite next uses are distinct trace indices.
      return (a, b) => {
        const na = a.nextUse ?? Infinity;
        const nb = b.nextUse ?? Infinity;
        return na === nb ? byUseThenId(a, b) : na > nb ? -1 : 1;
      };
    case 'service':
      return (a, b) =>
        serviceRank(b, now, tuning) - serviceRank(a, now, tuning) || byUseThenId(a, b);
  }
}

/**
 * The decision. Waiting voices are taken in the given (fair) order; each needs the budget's leave
 * (first clones and re-clones apart, see clone-budget.ts) and a slot: a free one first, else the
 * best victim the rules allow. A voice the budget refuses is passed over, so a first clone behind
 * a paced re-clone still goes out. Deterministic: the same snapshot gives the same decision.
 */
export function decide(
  policy: PolicyName,
  s: PolicySnapshot,
  tuning: ServiceTuning = DEFAULT_SERVICE_TUNING,
): PolicyDecision {
  const decision: PolicyDecision = { evict: [], clone: [], warm: [], wakeAt: null };
  if (s.waiting.length === 0) return decision;
  let free = Math.max(0, s.slots - s.held.length - s.busy);
  let first = s.allowance.first;
  let reclone = s.allowance.reclone;
  // Victims are found lazily: most decisions need one or none, so the first is a selection scan
  // (k held voices); a second one sorts the rest once.
  let candidates: HeldVoice[] | null = null;
  let order = victimOrder(policy, s.now, tuning);
  let sorted = false;
  let slotBlocked = false;
  let budgetBlocked = false;
  for (const w of s.waiting) {
    const allowance = { ...s.allowance, first, reclone };
    if (!mayClone(allowance, w.clonedBefore)) {
      budgetBlocked = true;
      if (first <= 0) break; // nothing of either kind may go out any more
      continue;
    }
    if (free === 0) {
      if (candidates === null) {
        candidates = s.held.filter((v) => isEvictable(v, s.rules, s.now));
        if (policy === 'service') {
          // The same order with each voice's rank computed once, not once per comparison: the
          // service calls this on every reclaim with up to a few hundred held voices.
          const rank = new Map(candidates.map((v) => [v, serviceRank(v, s.now, tuning)]));
          order = (a, b) => (rank.get(b) ?? 0) - (rank.get(a) ?? 0) || byUseThenId(a, b);
        }
      }
      if (candidates.length === 0) {
        slotBlocked = true;
        break;
      }
      if (decision.evict.length === 1) {
        // A second victim: order the rest once (k log k) instead of scanning them per victim.
        candidates.sort(order).reverse();
        sorted = true;
      }
      if (sorted) {
        decision.evict.push((candidates.pop() as HeldVoice).id);
      } else {
        let best = 0;
        for (let i = 1; i < candidates.length; i++)
          if (order(candidates[i], candidates[best]) < 0) best = i;
        decision.evict.push(candidates[best].id);
        candidates[best] = candidates[candidates.length - 1];
        candidates.pop();
      }
    } else {
      free--;
    }
    decision.clone.push(w.id);
    // Any clone counts against the pacing (clone-budget.ts paces what was spent, of both kinds).
    first--;
    reclone = Math.min(reclone - 1, first);
  }
  if (decision.clone.length < s.waiting.length) {
    const times: number[] = [];
    if (slotBlocked) {
      let soonest = Infinity;
      for (const v of s.held) soonest = Math.min(soonest, evictableAt(v, s.rules));
      // The rules compare strictly after the lease: ask a millisecond later.
      if (Number.isFinite(soonest)) times.push(Math.max(s.now, soonest) + 1);
    }
    if (budgetBlocked) {
      const at = s.allowance.recloneAllowedAt;
      if (at !== null && at > s.now && first > 0) times.push(at);
      if (s.allowance.resetsAt !== null && s.allowance.resetsAt > s.now)
        times.push(s.allowance.resetsAt);
    }
    decision.wakeAt = times.length ? Math.min(...times) : null;
  }
  return decision;
}

/**
 * The optional cost saver (RECLAIM_MAX_IDLE_SECONDS): the voices to reclaim whether or not anyone
 * waits, because holding them costs more than re-cloning them would. The same protections as a
 * reclaim for a backlog, with the idle threshold raised to `maxIdleMs`; longest idle first, at
 * most `max`. Frees slots for nothing by design, so the budget is not asked (a re-clone later is
 * paced like any other).
 */
export function idleVictims(
  held: readonly HeldVoice[],
  rules: ProtectionRules,
  maxIdleMs: number,
  now: number,
  max: number,
): string[] {
  const idleRules = { ...rules, minIdleMs: Math.max(rules.minIdleMs, maxIdleMs) };
  return held
    .filter((v) => isEvictable(v, idleRules, now))
    .sort(victimOrder('lru', now))
    .slice(0, Math.max(0, max))
    .map((v) => v.id);
}
