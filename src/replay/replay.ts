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
import { DEFAULT_REPLAY_OPTIONS, type ReplayOptions } from './replay-options';
import { replayPure } from './replay-pure';
import { replayReal } from './replay-real';
import type { ReplayDetail } from './replay-summary';
import type { Trace } from './trace';

// The replay's public surface stays importable from here, where replay() lives.
export { DEFAULT_REPLAY_OPTIONS, type ReplayOptions } from './replay-options';
export type { ReplayDetail, ReplayResult } from './replay-summary';

export function replay(
  trace: Trace,
  options: Partial<ReplayOptions> & Pick<ReplayOptions, 'policy' | 'slots'>,
): ReplayDetail {
  const o: ReplayOptions = { ...DEFAULT_REPLAY_OPTIONS, ...options };
  if (!(Number.isInteger(o.slots) && o.slots >= 1))
    throw new Error('slots must be a whole number ≥ 1');
  return o.pure ? replayPure(trace, o) : replayReal(trace, o);
}
