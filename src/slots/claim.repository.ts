import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import { assertTransition } from '../voice/voice-status';

// The claim writes queued -> allocating itself (slots owns the claim, ARCHITECTURE "Main flows" 2):
// the transition table must allow it, checked once at load.
assertTransition(['queued'], 'allocating');

export interface Claimed {
  voiceId: string;
  fencingToken: string;
  traceContext: Record<string, string> | null;
}

export interface ClaimOptions {
  max: number;
  allocationLeaseSeconds: number;
  /** How long an open breaker waits before it lets one probe through. */
  breakerCooldownSeconds: number;
  /** What the clone budget lets out now; absent when the account has no budget. */
  budget?: ClaimBudget;
}

export interface ClaimBudget {
  /**
   * The account's clones_total the allowance was computed from. Another claim since then spent
   * budget this allowance does not know of: the claim takes nothing and says `stale`.
   */
  expectedTotal: string;
  /** Clones of never-cloned voices allowed now. */
  first: number;
  /** Clones of voices cloned before (ready_at set) allowed now, at most `first`. */
  reclone: number;
}

export interface ClaimResult {
  claimed: Claimed[];
  /** The budget changed since it was read: read it again and retry. */
  stale: boolean;
  /** Queued voices the free slots would have taken had the budget allowed (0 when it did). */
  heldBackByBudget: number;
}

/**
 * The fair claim of queued voices under the provider's lock. One of the few statements outside
 * src/voice that write the voices table: slots owns the claim (queued -> allocating), with its
 * event row, in the same statement.
 */
@Injectable()
export class ClaimRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /**
   * Claims up to `max` queued voices of one provider in fair order, under the provider's row lock,
   * so any number of dispatchers on any number of replicas never claim beyond the limit
   * (invariant 1). Returns what was claimed; the caller enqueues their jobs after the commit.
   *
   * One statement, so one round trip in an implicit transaction: `p` locks the provider row (the
   * lock is re-read at its latest version once granted), then held_slots() counts with a fresh
   * snapshot taken after the lock (see its migration for why that matters), and voices a previous
   * lock holder claimed fail the `status = 'queued'` recheck of FOR UPDATE and are skipped.
   * An open breaker claims nothing until its cool-down has passed and then exactly one voice, the
   * half-open probe, recorded on the provider row in the same statement.
   */
  async claim(provider: ProviderName, opts: ClaimOptions): Promise<Claimed[]> {
    return (await this.claimBatch(provider, opts)).claimed;
  }

  /**
   * The claim with what it held back. With a budget, the account row is locked with the provider
   * row (the clone count is taken under the same lock as the slot count), the number taken is
   * capped by the allowance, voices cloned before are passed over while re-clones are not allowed,
   * and every claimed voice counts one clone (conservatively: an adoption or a refused create
   * gives it back at the next reading of the provider's counter).
   */
  async claimBatch(provider: ProviderName, opts: ClaimOptions): Promise<ClaimResult> {
    const b = opts.budget;
    const cap = (n: number | undefined) =>
      n === undefined || n === Infinity ? null : Math.max(0, Math.floor(n));
    const rows: {
      id: string | null;
      fencing_token: string | null;
      trace_context: Record<string, string> | null;
      stale: boolean | null;
      held_back: number | null;
    }[] = await this.ds.query(
      `WITH p AS MATERIALIZED (
         SELECT pr.name, COALESCE(LEAST(pr.configured_limit, pr.account_limit), 0) - pr.foreign_count AS room,
                CASE WHEN pr.breaker_state = 'closed' THEN $2::int
                     WHEN pr.breaker_state = 'open'
                       THEN (COALESCE(pr.breaker_opened_at, 'epoch') + make_interval(secs => $4) <= now())::int
                     ELSE (COALESCE(pr.breaker_probe_until, 'epoch') <= now())::int END AS most,
                ($5::bigint IS NOT NULL AND a.clones_total <> $5::bigint) AS stale
           FROM providers pr JOIN provider_accounts a ON a.provider = pr.name AND a.account = 'default'
          WHERE pr.name = $1 FOR UPDATE OF pr, a),
       slot AS MATERIALIZED (
         SELECT CASE WHEN most > 0 AND NOT stale THEN GREATEST(0, LEAST(most, room - held_slots(name))) ELSE 0 END AS n
           FROM p),
       take AS MATERIALIZED (
         SELECT LEAST(n, COALESCE($6::int, n)) AS n,
                -- Re-clones allowed now: all (null), none (0), or at most that many of this claim.
                CASE WHEN $7::int IS NULL OR $7::int >= LEAST(n, COALESCE($6::int, n)) THEN NULL ELSE $7::int END AS reclone
           FROM slot),
       -- The row's physical address comes along: the rows are locked until the update below, so
       -- it cannot change, and the update reaches each row directly instead of through the
       -- primary key (50 random index descents were most of a claim's time at 1M rows).
       picked AS (
         SELECT id, ctid AS tid FROM voices WHERE provider = $1 AND status = 'queued'
            AND (COALESCE((SELECT reclone FROM take), 1) > 0 OR ready_at IS NULL)
          ORDER BY fair_tag, queued_at, id
          LIMIT (SELECT CASE WHEN reclone > 0 THEN reclone ELSE n END FROM take) FOR UPDATE SKIP LOCKED),
       u AS (
         UPDATE voices v SET status = 'allocating', fencing_token = v.fencing_token + 1, claimed_at = now(),
                allocation_lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
           FROM picked WHERE v.ctid = picked.tid AND v.id = picked.id AND v.status = 'queued'
         RETURNING v.id, v.fencing_token, v.fair_tag, v.queued_at, v.trace_context),
       e AS (
         INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
         SELECT id, 'claimed', 'slot_free', 'queued', 'allocating',
                jsonb_build_object('fencingToken', fencing_token::text) FROM u),
       c AS (
         UPDATE provider_accounts SET clones_total = clones_total + (SELECT count(*) FROM u)
          WHERE provider = $1 AND account = 'default' AND EXISTS (SELECT 1 FROM u)),
       t AS (
         UPDATE providers SET virtual_time = GREATEST(virtual_time, (SELECT max(fair_tag) FROM u)),
                -- Per claimed voice, gaps capped at 10 min so an idle night does not skew it.
                claim_interval_ms = CASE WHEN last_claim_at IS NULL THEN claim_interval_ms ELSE
                  COALESCE(claim_interval_ms * 0.8, 0) + (CASE WHEN claim_interval_ms IS NULL THEN 1 ELSE 0.2 END) *
                  LEAST(EXTRACT(EPOCH FROM now() - last_claim_at) * 1000, 600000) / (SELECT count(*) FROM u) END,
                last_claim_at = now(),
                -- A claim under a breaker that is not closed is its one probe.
                breaker_state = CASE WHEN breaker_state = 'closed' THEN 'closed' ELSE 'half_open' END,
                breaker_probe_voice = CASE WHEN breaker_state = 'closed' THEN breaker_probe_voice
                                           ELSE (SELECT id FROM u LIMIT 1) END,
                breaker_probe_until = CASE WHEN breaker_state = 'closed' THEN breaker_probe_until
                                           ELSE now() + make_interval(secs => $3) END
          WHERE name = $1 AND EXISTS (SELECT 1 FROM u))
       -- In claim order: jobs are enqueued in this order, and UPDATE ... RETURNING follows the
       -- join's plan, not the pick's ORDER BY. A last row tells what the budget held back: the
       -- queued voices the free slots would have taken beyond those claimed (counted only when a
       -- budget was given, and only as far as the free slots reach).
       (SELECT id, fencing_token, trace_context, NULL::boolean AS stale, NULL::int AS held_back
          FROM u ORDER BY fair_tag, queued_at, id)
       UNION ALL
       SELECT NULL, NULL, NULL, p.stale,
              CASE WHEN $5::bigint IS NULL OR p.stale THEN 0 ELSE
                (SELECT count(*)::int FROM (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued'
                   LIMIT (SELECT n FROM slot)) q) - (SELECT count(*)::int FROM u) END
         FROM p`,
      [
        provider,
        opts.max,
        opts.allocationLeaseSeconds,
        opts.breakerCooldownSeconds,
        b?.expectedTotal ?? null,
        cap(b?.first),
        cap(b?.reclone),
      ],
    );
    const meta = rows[rows.length - 1];
    return {
      claimed: rows
        .filter((r) => r.id !== null)
        .map((r) => ({
          voiceId: r.id as string,
          fencingToken: String(r.fencing_token),
          traceContext: r.trace_context,
        })),
      stale: meta?.stale === true,
      heldBackByBudget: Math.max(0, meta?.held_back ?? 0),
    };
  }
}
