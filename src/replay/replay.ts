/**
 * Replays a trace through the reclaim policy (src/policy/reclaim-policy.ts) in simulated time:
 * the same `decide` the service runs, fed snapshots the way the service's claim and reclaim
 * would see them. Two modes (CONTRACT.md "Replay of the reclaim policy"):
 * - pure: cache semantics, for comparison with textbook LRU and Belady: no protections, clones
 *   take no time; a miss clones at once, evicting one voice when all slots are full. With a
 *   budget, a miss the budget does not let out is refused: counted as a miss, nothing cloned or
 *   evicted (the next activation of that voice misses again).
 * - real: the service's rules: an activation leases the voice for ACTIVATION_LEASE_SECONDS past
 *   the end of its hold, a voice is never reclaimed before RECLAIM_MIN_RESIDENCY_SECONDS after it
 *   became ready nor before it has been idle RECLAIM_MIN_IDLE_SECONDS, a clone takes
 *   `cloneSeconds`, and the budget and its pacing (clone-budget.ts) decide when clones may go
 *   out; a miss waits (in a FIFO queue) until its clone is ready.
 */
import {
  cloneAllowance,
  DEFAULT_BURST_SHARE,
  UNLIMITED_CLONES,
  type CloneAllowance,
  type CloneBudgetSettings,
  type CloneBudgetState,
} from '../policy/clone-budget';
import {
  decide,
  DEFAULT_SERVICE_TUNING,
  NO_PROTECTION,
  type HeldVoice,
  type PolicyName,
  type ProtectionRules,
  type ServiceTuning,
  type WaitingVoice,
} from '../policy/reclaim-policy';
import { firstUse, recordUseInPlace, type VoiceUsage } from '../policy/voice-usage';
import { nextUseIndices, type Trace } from './trace';

export interface ReplayOptions {
  policy: PolicyName;
  slots: number;
  pure: boolean;
  /** Clones per period; null: no budget. */
  budget: number | null;
  periodDays: number;
  leaseSeconds: number;
  minResidencySeconds: number;
  minIdleSeconds: number;
  cloneSeconds: number;
  reserveShare: number;
  burstShare: number;
  tuning: ServiceTuning;
}

export const DEFAULT_REPLAY_OPTIONS: Omit<ReplayOptions, 'policy' | 'slots'> = {
  pure: false,
  budget: null,
  periodDays: 30,
  leaseSeconds: 300,
  minResidencySeconds: 120,
  minIdleSeconds: 600,
  cloneSeconds: 5,
  reserveShare: 0.1,
  burstShare: DEFAULT_BURST_SHARE,
  tuning: DEFAULT_SERVICE_TUNING,
};

/** The replay's answer, exactly the fields of CONTRACT.md. */
export interface ReplayResult {
  policy: PolicyName;
  slots: number;
  requests: number;
  hits: number;
  misses: number;
  missRatio: number;
  clones: number;
  reclaims: number;
  /** Seconds from the trace's start when the budget first ran out (remaining 0); null: never. */
  budgetExhaustedAt: number | null;
  /** Percentiles over every activation (a hit waits 0), seconds. */
  waitP50Seconds: number;
  waitP99Seconds: number;
}

/** What the benchmark reads beside the contract's fields. */
export interface ReplayDetail extends ReplayResult {
  /** Misses the budget refused (pure mode only). */
  refused: number;
  firstClones: number;
  reclones: number;
  /** Per budget period (index = period), seconds when it ran out, or null. */
  exhaustedByPeriod: (number | null)[];
  durationSeconds: number;
}

const UNLIMITED = UNLIMITED_CLONES;

/** Nearest-rank percentile of a sorted sample. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

/** The clone budget over simulated time: periods of `periodDays` from the trace's start. */
class Budget {
  private readonly state: CloneBudgetState;
  private readonly settings: CloneBudgetSettings;
  private readonly periodMs: number;
  private period = 0;
  readonly exhaustedByPeriod: (number | null)[] = [null];

  constructor(limit: number | null, o: ReplayOptions) {
    this.periodMs = o.periodDays * 86400 * 1000;
    this.state = {
      limit,
      spent: 0,
      resetsAt: limit === null ? null : this.periodMs,
      exhaustedUntil: null,
    };
    this.settings = {
      reserveShare: o.reserveShare,
      periodSeconds: o.periodDays * 86400,
      burstShare: o.burstShare,
    };
  }

  allowance(now: number): CloneAllowance {
    if (this.state.limit === null) return UNLIMITED;
    const period = Math.floor(now / this.periodMs);
    if (period > this.period) {
      this.period = period;
      this.state.spent = 0;
      this.state.resetsAt = (period + 1) * this.periodMs;
      while (this.exhaustedByPeriod.length <= period) this.exhaustedByPeriod.push(null);
    }
    return cloneAllowance(this.state, this.settings, now);
  }

  spend(now: number): void {
    if (this.state.limit === null) return;
    this.state.spent++;
    if (this.state.spent >= this.state.limit && this.exhaustedByPeriod[this.period] === null)
      this.exhaustedByPeriod[this.period] = now / 1000;
  }

  firstExhaustion(): number | null {
    return this.exhaustedByPeriod.find((e) => e !== null) ?? null;
  }
}

/** A binary min-heap of timed events; ties by insertion order, so a replay is deterministic. */
class EventHeap {
  private readonly at: number[] = [];
  private readonly seq: number[] = [];
  private readonly payload: number[] = [];
  private counter = 0;

  get size(): number {
    return this.at.length;
  }

  peekTime(): number {
    return this.at.length ? this.at[0] : Infinity;
  }

  private less(i: number, j: number): boolean {
    return this.at[i] < this.at[j] || (this.at[i] === this.at[j] && this.seq[i] < this.seq[j]);
  }

  private swap(i: number, j: number): void {
    for (const a of [this.at, this.seq, this.payload]) {
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }

  push(at: number, payload: number): void {
    this.at.push(at);
    this.seq.push(this.counter++);
    this.payload.push(payload);
    let i = this.at.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the earliest event; returns its payload. */
  pop(): number {
    const top = this.payload[0];
    const last = this.at.length - 1;
    this.swap(0, last);
    this.at.pop();
    this.seq.pop();
    this.payload.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.at.length && this.less(l, m)) m = l;
      if (r < this.at.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

/** The held (ready) voices as an array the policy reads, with O(1) removal by voice number. */
class HeldSet {
  readonly list: HeldVoice[] = [];
  private readonly voiceOf: number[] = [];
  private readonly position: Int32Array;

  constructor(voices: number) {
    this.position = new Int32Array(voices).fill(-1);
  }

  get(v: number): HeldVoice | undefined {
    const p = this.position[v];
    return p < 0 ? undefined : this.list[p];
  }

  add(v: number, h: HeldVoice): void {
    this.position[v] = this.list.length;
    this.list.push(h);
    this.voiceOf.push(v);
  }

  remove(v: number): void {
    const p = this.position[v];
    const last = this.list.length - 1;
    this.list[p] = this.list[last];
    this.voiceOf[p] = this.voiceOf[last];
    this.position[this.voiceOf[p]] = p;
    this.list.pop();
    this.voiceOf.pop();
    this.position[v] = -1;
  }
}

function summarise(
  o: ReplayOptions,
  requests: number,
  hits: number,
  clones: { first: number; reclone: number },
  reclaims: number,
  refused: number,
  budget: Budget,
  waits: Float64Array,
  started: number,
): ReplayDetail {
  waits.sort();
  const misses = requests - hits;
  return {
    policy: o.policy,
    slots: o.slots,
    requests,
    hits,
    misses,
    missRatio: requests ? round(misses / requests, 6) : 0,
    clones: clones.first + clones.reclone,
    reclaims,
    budgetExhaustedAt: budget.firstExhaustion(),
    waitP50Seconds: round(percentile(waits, 50), 3),
    waitP99Seconds: round(percentile(waits, 99), 3),
    refused,
    firstClones: clones.first,
    reclones: clones.reclone,
    exhaustedByPeriod: budget.exhaustedByPeriod,
    durationSeconds: round((performance.now() - started) / 1000, 3),
  };
}

export function replay(
  trace: Trace,
  options: Partial<ReplayOptions> & Pick<ReplayOptions, 'policy' | 'slots'>,
): ReplayDetail {
  const o: ReplayOptions = { ...DEFAULT_REPLAY_OPTIONS, ...options };
  if (!(Number.isInteger(o.slots) && o.slots >= 1))
    throw new Error('slots must be a whole number ≥ 1');
  return o.pure ? replayPure(trace, o) : replayReal(trace, o);
}

function replayPure(trace: Trace, o: ReplayOptions): ReplayDetail {
  const started = performance.now();
  const n = trace.time.length;
  const next = o.policy === 'belady' ? nextUseIndices(trace) : null;
  const idOf = new Map<string, number>(trace.voices.map((id, i) => [id, i]));
  const usage: (VoiceUsage | undefined)[] = new Array<VoiceUsage | undefined>(trace.voices.length);
  const cloned = new Uint8Array(trace.voices.length);
  const held = new HeldSet(trace.voices.length);
  const budget = new Budget(o.budget, o);
  const clones = { first: 0, reclone: 0 };
  let hits = 0;
  let reclaims = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const now = trace.time[i] * 1000;
    const v = trace.voice[i];
    let u = usage[v];
    if (u === undefined) usage[v] = u = firstUse(now);
    else recordUseInPlace(u, now);
    const h = held.get(v);
    if (h) {
      hits++;
      h.lastUsedAt = now;
      h.useOrder = i;
      if (next) h.nextUse = next[i];
      continue;
    }
    const waiting: WaitingVoice[] = [
      { id: trace.voices[v], clonedBefore: cloned[v] === 1, queuedAt: now },
    ];
    const d = decide(
      o.policy,
      {
        now,
        slots: o.slots,
        held: held.list,
        busy: 0,
        waiting,
        allowance: budget.allowance(now),
        rules: NO_PROTECTION,
      },
      o.tuning,
    );
    if (d.clone.length === 0) {
      refused++;
      continue;
    }
    for (const id of d.evict) {
      held.remove(idOf.get(id) as number);
      reclaims++;
    }
    if (cloned[v]) clones.reclone++;
    else clones.first++;
    cloned[v] = 1;
    budget.spend(now);
    held.add(v, {
      id: trace.voices[v],
      usage: u,
      lastUsedAt: now,
      leaseExpiresAt: null,
      readyAt: now,
      useOrder: i,
      nextUse: next ? next[i] : undefined,
    });
  }
  return summarise(o, n, hits, clones, reclaims, refused, budget, new Float64Array(n), started);
}

const NONE = 0;
const WAITING = 1;
const ALLOCATING = 2;
const READY = 3;

/** Heap payloads: a voice number for a finished clone, this for a wake-up. */
const WAKE = -1;

function replayReal(trace: Trace, o: ReplayOptions): ReplayDetail {
  const started = performance.now();
  const n = trace.time.length;
  const V = trace.voices.length;
  const next = o.policy === 'belady' ? nextUseIndices(trace) : null;
  const idOf = new Map<string, number>(trace.voices.map((id, i) => [id, i]));
  const rules: ProtectionRules = {
    minIdleMs: o.minIdleSeconds * 1000,
    minResidencyMs: o.minResidencySeconds * 1000,
  };
  const leaseMs = o.leaseSeconds * 1000;
  const cloneMs = o.cloneSeconds * 1000;
  const usage: (VoiceUsage | undefined)[] = new Array<VoiceUsage | undefined>(V);
  const status = new Uint8Array(V);
  const cloned = new Uint8Array(V);
  /** Activations (row numbers) waiting for each voice to become ready. */
  const pending = new Map<number, number[]>();
  /** The next use of each voice as known at the latest activation, for belady. */
  const nextOf = new Float64Array(V).fill(Infinity);
  const held = new HeldSet(V);
  let waiting: WaitingVoice[] = [];
  let allocating = 0;
  const heap = new EventHeap();
  let wakeScheduled = Infinity;
  const budget = new Budget(o.budget, o);
  const clones = { first: 0, reclone: 0 };
  const waits = new Float64Array(n);
  let hits = 0;
  let reclaims = 0;

  const runPolicy = (now: number): void => {
    if (waiting.length === 0) return;
    const d = decide(
      o.policy,
      {
        now,
        slots: o.slots,
        held: held.list,
        busy: allocating,
        waiting,
        allowance: budget.allowance(now),
        rules,
      },
      o.tuning,
    );
    for (const id of d.evict) {
      const v = idOf.get(id) as number;
      held.remove(v);
      status[v] = NONE;
      reclaims++;
    }
    if (d.clone.length) {
      for (const id of d.clone) {
        const v = idOf.get(id) as number;
        status[v] = ALLOCATING;
        allocating++;
        if (cloned[v]) clones.reclone++;
        else clones.first++;
        cloned[v] = 1;
        budget.spend(now);
        heap.push(now + cloneMs, v);
      }
      const taken = new Set(d.clone);
      waiting = waiting.filter((w) => !taken.has(w.id));
    }
    if (d.wakeAt !== null && (d.wakeAt < wakeScheduled || wakeScheduled <= now)) {
      wakeScheduled = d.wakeAt;
      heap.push(d.wakeAt, WAKE);
    }
  };

  const finishClone = (v: number, now: number): void => {
    allocating--;
    status[v] = READY;
    let lastUsedAt = now;
    let leaseExpiresAt = now + leaseMs;
    let useOrder = 0;
    for (const row of pending.get(v) ?? []) {
      waits[row] = (now - trace.time[row] * 1000) / 1000;
      lastUsedAt = Math.max(lastUsedAt, now + trace.hold[row] * 1000);
      leaseExpiresAt = Math.max(leaseExpiresAt, now + (trace.hold[row] * 1000 + leaseMs));
      useOrder = row;
    }
    pending.delete(v);
    held.add(v, {
      id: trace.voices[v],
      usage: usage[v] as VoiceUsage,
      lastUsedAt,
      leaseExpiresAt,
      readyAt: now,
      useOrder,
      nextUse: nextOf[v],
    });
  };

  const runEventsUntil = (limit: number): void => {
    while (heap.size && heap.peekTime() <= limit) {
      const at = heap.peekTime();
      const payload = heap.pop();
      if (payload === WAKE) {
        if (at >= wakeScheduled) wakeScheduled = Infinity;
      } else {
        finishClone(payload, at);
      }
      runPolicy(at);
    }
  };

  for (let i = 0; i < n; i++) {
    const now = trace.time[i] * 1000;
    // A clone finishing at the same instant is ready for this activation.
    runEventsUntil(now);
    const v = trace.voice[i];
    const u = usage[v];
    if (u === undefined) usage[v] = firstUse(now);
    else recordUseInPlace(u, now);
    if (next) nextOf[v] = next[i];
    const holdMs = trace.hold[i] * 1000;
    if (status[v] === READY) {
      hits++;
      const h = held.get(v) as HeldVoice;
      h.lastUsedAt = Math.max(h.lastUsedAt, now + holdMs);
      h.leaseExpiresAt = Math.max(h.leaseExpiresAt ?? 0, now + holdMs + leaseMs);
      h.useOrder = i;
      h.nextUse = nextOf[v];
      continue;
    }
    const rows = pending.get(v);
    if (rows) rows.push(i);
    else pending.set(v, [i]);
    if (status[v] === NONE) {
      status[v] = WAITING;
      waiting.push({ id: trace.voices[v], clonedBefore: cloned[v] === 1, queuedAt: now });
      runPolicy(now);
    }
  }
  // Serve what still waits after the last activation.
  runEventsUntil(Infinity);
  return summarise(o, n, hits, clones, reclaims, 0, budget, waits, started);
}
