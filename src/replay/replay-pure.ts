import { decide, NO_PROTECTION, type WaitingVoice } from '../policy/reclaim-policy';
import { firstUse, recordUseInPlace, type VoiceUsage } from '../policy/voice-usage';
import { HeldSet } from './held-set';
import type { ReplayOptions } from './replay-options';
import { type ReplayDetail, summarise } from './replay-summary';
import { SimulatedBudget } from './simulated-budget';
import { nextUseIndices, type Trace } from './trace';

/** Pure mode (see replay.ts): cache semantics, no protections, clones take no time. */
export function replayPure(trace: Trace, o: ReplayOptions): ReplayDetail {
  const started = performance.now();
  const n = trace.time.length;
  const next = o.policy === 'belady' ? nextUseIndices(trace) : null;
  const idOf = new Map<string, number>(trace.voices.map((id, i) => [id, i]));
  const usage: (VoiceUsage | undefined)[] = new Array<VoiceUsage | undefined>(trace.voices.length);
  const cloned = new Uint8Array(trace.voices.length);
  const held = new HeldSet(trace.voices.length);
  const budget = new SimulatedBudget(o.budget, o);
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
