import {
  decide,
  type HeldVoice,
  type ProtectionRules,
  type WaitingVoice,
} from '../policy/reclaim-policy';
import { firstUse, recordUseInPlace, type VoiceUsage } from '../policy/voice-usage';
import { EventHeap } from './event-heap';
import { HeldSet } from './held-set';
import type { ReplayOptions } from './replay-options';
import { type ReplayDetail, summarise } from './replay-summary';
import { SimulatedBudget } from './simulated-budget';
import { nextUseIndices, type Trace } from './trace';

/**
 * Real mode (see replay.ts): the service's leases, protections, clone time and budget pacing, in
 * simulated time driven by an event heap of finished clones and policy wake-ups.
 */

const NONE = 0;
const WAITING = 1;
const ALLOCATING = 2;
const READY = 3;

/** Heap payloads: a voice number for a finished clone, this for a wake-up. */
const WAKE = -1;

export function replayReal(trace: Trace, o: ReplayOptions): ReplayDetail {
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
  const budget = new SimulatedBudget(o.budget, o);
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
