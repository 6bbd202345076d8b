import type { ReplayDetail } from '../../../src/replay/replay';
import type { Sample, SessionRecord } from './workload';

export const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/** The replay's trace (CONTRACT.md "Replay of the reclaim policy") of a run's sessions. */
export function toTraceCsv(sessions: readonly SessionRecord[]): string {
  const rows = [...sessions].sort((a, b) => a.atMs - b.atMs);
  return [
    'time,user,voice,hold',
    ...rows.map(
      (r) =>
        `${(r.atMs / 1000).toFixed(3)},user-${r.user},${r.voice},${(r.holdMs / 1000).toFixed(3)}`,
    ),
    '',
  ].join('\n');
}

export function simulatedSummary(r: ReplayDetail) {
  return {
    sessions: r.requests,
    hitRatio: r.requests ? r.hits / r.requests : 0,
    clones: r.clones,
    clonesPerThousand: r.requests ? Math.round((1000 * r.clones) / r.requests) : 0,
    p50Seconds: r.waitP50Seconds,
    p99Seconds: r.waitP99Seconds,
  };
}

/**
 * The share of the slots the provider held over the backlog's time: each sampler interval that
 * began with queued voices counts, weighted by its length, with the sandbox's held count
 * integrated exactly over it (capped at the limit: a voice beyond it is no extra utilisation).
 */
export function providerUtilisation(
  samples: readonly Sample[],
  history: ReadonlyArray<{ at: number; held: number }>,
  slots: number,
): { utilisation: number; seconds: number } {
  let weighted = 0;
  let total = 0;
  // history[k] is the last change at or before the time reached; history[0] is the sandbox's
  // start, before any sample.
  let k = 0;
  for (let i = 0; i + 1 < samples.length; i++) {
    const from = samples[i].at;
    const to = samples[i + 1].at;
    while (k + 1 < history.length && history[k + 1].at <= from) k++;
    if (samples[i].queued === 0) continue;
    let t = from;
    while (t < to) {
      const change = k + 1 < history.length ? history[k + 1].at : Infinity;
      const end = Math.min(change, to);
      weighted += (Math.min(history[k].held, slots) / slots) * (end - t);
      t = end;
      if (change <= t) k++;
    }
    total += to - from;
  }
  return { utilisation: total ? weighted / total : 1, seconds: total / 1000 };
}
