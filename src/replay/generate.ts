/**
 * Synthetic activation traces for the replay, shaped like an app's real use of cloned voices:
 * - user activity is Zipf-distributed (a few people speak daily, most now and then);
 * - a user speaks in sessions: several activations of one voice (mostly their favourite, Zipf
 *   over their voices) separated by think times;
 * - sessions follow a daily rhythm (busy evenings, quiet nights);
 * - users arrive over the whole trace and go dormant after a while (some for good).
 * Seeded (src/common/seeded-random.ts), so a trace is reproducible from its parameters.
 */
import { seededRandom } from '../common/seeded-random';

export interface GenerateOptions {
  users: number;
  voicesPerUser: number;
  days: number;
  seed: number;
  /** Mean sessions a day of an average user while active (default 1.5). */
  sessionsPerDay?: number;
  /** Zipf exponent of user activity (default 1). */
  zipf?: number;
  /** Share of users present from the start; the others arrive uniformly over the trace (0.5). */
  presentAtStart?: number;
  /** Mean days a user stays active before going dormant (default 20). */
  meanActiveDays?: number;
  /** Mean activations per session (default 5). */
  activationsPerSession?: number;
  /** Mean think time between activations of a session, seconds (default 45). */
  thinkSeconds?: number;
}

export interface Row {
  time: number;
  user: number;
  voice: number;
  hold: number;
}

const DAY = 86400;

/** Activity of the hour of day at `t` seconds, peaking at 20:00, lowest at 08:00 (mean 1). */
function rhythm(t: number): number {
  return 1 + 0.8 * Math.cos(2 * Math.PI * ((t % DAY) / DAY - 20 / 24));
}

export function generateRows(o: GenerateOptions): Row[] {
  const rand = seededRandom(o.seed);
  const exp = (mean: number): number => -mean * Math.log(1 - rand());
  const zipf = o.zipf ?? 1;
  const sessionsPerDay = o.sessionsPerDay ?? 1.5;
  const presentAtStart = o.presentAtStart ?? 0.5;
  const meanActiveDays = o.meanActiveDays ?? 20;
  const perSession = o.activationsPerSession ?? 5;
  const think = o.thinkSeconds ?? 45;
  const end = o.days * DAY;
  // Zipf weights over users in a shuffled order (so user ids do not reveal activity).
  const weights = Array.from({ length: o.users }, (_, r) => 1 / Math.pow(r + 1, zipf));
  const mean = weights.reduce((a, b) => a + b, 0) / o.users;
  for (let i = weights.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [weights[i], weights[j]] = [weights[j], weights[i]];
  }
  const voiceWeights = Array.from({ length: o.voicesPerUser }, (_, r) => 1 / Math.pow(r + 1, 1.5));
  const voiceTotal = voiceWeights.reduce((a, b) => a + b, 0);
  const rows: Row[] = [];
  for (let u = 0; u < o.users; u++) {
    // Sessions a day, capped so the busiest user speaks at most ~40 times a day.
    const rate = Math.min(40, (sessionsPerDay * weights[u]) / mean) / DAY;
    const joins = rand() < presentAtStart ? 0 : rand() * end;
    let t = joins;
    const leaves = joins + exp(meanActiveDays * DAY);
    // Thinning of a Poisson process whose rate follows the daily rhythm (max 1.8 × mean).
    for (;;) {
      t += exp(1 / (rate * 1.8));
      if (t >= end || t >= leaves) break;
      if (rand() * 1.8 > rhythm(t)) continue;
      let pick = rand() * voiceTotal;
      let voice = 0;
      while (voice < o.voicesPerUser - 1 && pick >= voiceWeights[voice])
        pick -= voiceWeights[voice++];
      // Geometric number of activations with the given mean, each with a short hold.
      let at = t;
      do {
        rows.push({ time: at, user: u, voice, hold: Math.round(exp(20)) });
        at += exp(think);
      } while (rand() > 1 / perSession && at < end);
      t = at;
    }
  }
  rows.sort((a, b) => a.time - b.time || a.user - b.user);
  return rows;
}

/** The rows as the replay's CSV (`time,user,voice,hold`), times to the millisecond. */
export function toCsv(rows: readonly Row[]): string {
  const out: string[] = ['time,user,voice,hold'];
  for (const r of rows)
    out.push(`${r.time.toFixed(3)},u${r.user},u${r.user}-v${r.voice},${r.hold}`);
  return `${out.join('\n')}\n`;
}
