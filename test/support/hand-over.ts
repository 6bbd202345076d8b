import type { Client } from 'pg';

/** The protection the service was started with, in ms (RECLAIM_MIN_* and the activation lease). */
export interface Protection {
  minIdleMs: number;
  minResidencyMs: number;
  activationLeaseMs: number;
  /** ALLOCATION_LEASE_SECONDS in ms: a claim or a reclaim is due to be swept when it passes. */
  allocationLeaseMs: number;
}

/** A ready voice taken by reclaim: when the policy could first take it, and when it did. */
export interface Reclaim {
  voiceId: string;
  reclaimableAt: number;
  at: number;
}

/** A slot freed (reclaimed, or a claim swept back to the queue) and the next claim on the pool. */
export interface Refill {
  freedAt: number;
  claimedAt: number;
}

/** A voice holding a slot on a job's behalf (claimed → allocating, or reclaiming) and its end. */
export interface Hold {
  voiceId: string;
  kind: 'claim' | 'reclaim';
  at: number;
  /** The next transition of the voice, null while it still holds the slot. */
  endedAt: number | null;
}

export interface HandOvers {
  reclaims: Reclaim[];
  refills: Refill[];
  holds: Hold[];
}

/** Events that move a voice out of `allocating` or `reclaiming`. */
const ENDS_HOLD = new Set(['ready', 'adopted', 'requeued', 'failed', 'reclaimed', 'deleted']);

interface EventRow {
  voice_id: string;
  type: string;
  from_status: string | null;
  at: Date;
  last_used_at: string | null;
}

/**
 * Reads the slot hand-overs of one provider from `voice_events`, whose timestamps are Postgres's
 * own commit-time clock: the delays derived here do not depend on when, or how often, a test or a
 * benchmark looks, so they hold on a loaded machine.
 *
 * - A reclaim's victim became reclaimable at the end of its protection (ARCHITECTURE: residency
 *   after ready, idle time and the activation lease after its last use), read from the victim's
 *   own events and the last use recorded with the reclaim.
 * - A claim on the pool fills the slot freed last before it: while a backlog waits, a freed slot
 *   is filled by the next claim. (Not the first freed: a slot taken meanwhile by something that
 *   writes no event, such as a remote clean-up, would shift every pairing after it.)
 */
export async function readHandOvers(
  client: Client,
  provider: string,
  p: Protection,
): Promise<HandOvers> {
  const { rows } = await client.query<EventRow>(
    `SELECT e.voice_id, e.type, e.from_status, e.created_at AS at,
            e.metadata->>'lastUsedAt' AS last_used_at
       FROM voice_events e JOIN voices v ON v.id = e.voice_id
      WHERE v.provider = $1
      ORDER BY e.created_at, e.id`,
    [provider],
  );
  const readyAt = new Map<string, number>();
  const usedAt = new Map<string, number>();
  const open = new Map<string, Hold>();
  const freed: number[] = [];
  const out: HandOvers = { reclaims: [], refills: [], holds: [] };
  for (const e of rows) {
    const at = e.at.getTime();
    const held = open.get(e.voice_id);
    if (held && ENDS_HOLD.has(e.type)) {
      held.endedAt = at;
      open.delete(e.voice_id);
    }
    switch (e.type) {
      case 'ready':
      case 'adopted':
        readyAt.set(e.voice_id, at);
        usedAt.set(e.voice_id, at);
        break;
      case 'activated':
        usedAt.set(e.voice_id, at);
        break;
      case 'reclaiming': {
        const used = e.last_used_at ? Date.parse(e.last_used_at) : (usedAt.get(e.voice_id) ?? at);
        const reclaimableAt = Math.max(
          (readyAt.get(e.voice_id) ?? -Infinity) + p.minResidencyMs,
          used + Math.max(p.minIdleMs, p.activationLeaseMs),
        );
        out.reclaims.push({ voiceId: e.voice_id, reclaimableAt, at });
        const hold: Hold = { voiceId: e.voice_id, kind: 'reclaim', at, endedAt: null };
        out.holds.push(hold);
        open.set(e.voice_id, hold);
        break;
      }
      case 'claimed': {
        const hold: Hold = { voiceId: e.voice_id, kind: 'claim', at, endedAt: null };
        out.holds.push(hold);
        open.set(e.voice_id, hold);
        const f = freed.pop();
        if (f !== undefined) out.refills.push({ freedAt: f, claimedAt: at });
        break;
      }
      case 'reclaimed':
        freed.push(at);
        break;
      case 'requeued':
        // A claim given back (lease ended, provider refused) frees its slot too.
        if (e.from_status === 'allocating') freed.push(at);
        break;
    }
  }
  return out;
}

/** The figures of one window of hand-overs, for a report or a failure message. */
export interface HandOverWindow {
  /** Reclaims, each with its delay past max(reclaimable, `graceUntil`). */
  reclaimLateMs: number[];
  /** How many of them became reclaimable after `graceUntil` (a hand-over measured at full speed). */
  reclaimsAfterGrace: number;
  /** Freed slot → next claim, for slots freed after `graceUntil`. */
  refillMs: number[];
  /** Claims and reclaims that held their slot past their lease by this much (ended or not). */
  overdueHolds: Array<{ voiceId: string; kind: string; overdueMs: number }>;
}

/**
 * Hand-overs of a window that starts at `from` (a fault is over): every slot reclaimable after
 * `from` must be reclaimed once `graceUntil` has passed, at once; `now` bounds the holds still
 * open. `exclude` leaves out holds a caller knows wait on something else.
 */
export function handOverWindow(
  h: HandOvers,
  p: Protection,
  from: number,
  graceUntil: number,
  now: number,
  exclude: (hold: Hold) => boolean = () => false,
): HandOverWindow {
  const reclaimLateMs = h.reclaims
    .filter((r) => r.at >= from || r.reclaimableAt >= from)
    .map((r) => Math.round(r.at - Math.max(r.reclaimableAt, graceUntil)));
  const reclaimsAfterGrace = h.reclaims.filter((r) => r.reclaimableAt >= graceUntil).length;
  const refillMs = h.refills
    .filter((r) => r.freedAt >= graceUntil)
    .map((r) => Math.round(r.claimedAt - r.freedAt));
  const overdueHolds = h.holds
    .filter((x) => !exclude(x) && (x.endedAt ?? now) >= from)
    .map((x) => ({
      voiceId: x.voiceId,
      kind: x.kind,
      overdueMs: Math.round((x.endedAt ?? now) - Math.max(x.at + p.allocationLeaseMs, graceUntil)),
    }))
    .filter((x) => x.overdueMs > 0);
  return { reclaimLateMs, reclaimsAfterGrace, refillMs, overdueHolds };
}
