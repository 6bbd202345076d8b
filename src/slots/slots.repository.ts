import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import { voiceFromRow, type Voice, type VoiceRow } from '../voice/voice';
import { assertTransition } from '../voice/voice-status';

// The claim statements below write queued -> allocating themselves (slots owns the claim): the
// transition table must allow it, checked once at load.
assertTransition(['queued'], 'allocating');

export interface ProviderCapacity {
  provider: ProviderName;
  configuredLimit: number | null;
  accountLimit: number | null;
  /** The lower of the configured and account limits where both exist. */
  limit: number;
  held: number;
  foreign: number;
  free: number;
  queued: number;
  oldestQueuedSeconds: number | null;
  reclaiming: number;
  breaker: BreakerState;
  /** Moving average of the time between claims: position × this ≈ the wait. */
  claimIntervalMs: number | null;
}

export interface Claimed {
  voiceId: string;
  fencingToken: string;
  traceContext: Record<string, string> | null;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

interface ProviderRow {
  name: ProviderName;
  configured_limit: number | null;
  account_limit: number | null;
  foreign_count: number;
  claim_interval_ms: number | null;
  breaker_state: BreakerState;
  breaker_opened_at: Date | null;
  breaker_probe_until: Date | null;
  breaker_probe_voice: string | null;
}

/** Whether a provider call may go out now, under the provider's breaker. */
export function probeDue(p: ProviderRow, cooldownSeconds: number, now = Date.now()): boolean {
  return p.breaker_state === 'open'
    ? (p.breaker_opened_at?.getTime() ?? 0) + cooldownSeconds * 1000 <= now
    : (p.breaker_probe_until?.getTime() ?? 0) <= now;
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

export function effectiveLimit(configured: number | null, account: number | null): number {
  if (configured !== null && account !== null) return Math.min(configured, account);
  return configured ?? account ?? 0;
}

/** SQL of the slot pool: provider rows and the fair claim. */
@Injectable()
export class SlotsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async setLimits(
    provider: ProviderName,
    limits: { configuredLimit?: number | null; accountLimit?: number | null },
  ): Promise<void> {
    await this.ds.query(
      `UPDATE providers SET
         configured_limit = CASE WHEN $2 THEN $3::int ELSE configured_limit END,
         account_limit = CASE WHEN $4 THEN $5::int ELSE account_limit END,
         account_checked_at = CASE WHEN $4 THEN now() ELSE account_checked_at END,
         updated_at = now()
       WHERE name = $1`,
      [
        provider,
        limits.configuredLimit !== undefined,
        limits.configuredLimit ?? null,
        limits.accountLimit !== undefined,
        limits.accountLimit ?? null,
      ],
    );
  }

  async setForeignCount(provider: ProviderName, foreign: number): Promise<void> {
    await this.ds.query(
      `UPDATE providers SET foreign_count = $2, updated_at = now() WHERE name = $1`,
      [provider, foreign],
    );
  }

  /** Voices that occupy (or may occupy) a remote slot right now (held_slots, in a migration). */
  private heldSql = `SELECT held_slots($1) AS n`;

  async capacity(provider: ProviderName): Promise<ProviderCapacity> {
    const [p]: ProviderRow[] = await this.ds.query(`SELECT * FROM providers WHERE name = $1`, [
      provider,
    ]);
    const [{ n: held }]: { n: number }[] = await this.ds.query(this.heldSql, [provider]);
    const [q]: { queued: number; oldest: number | null; reclaiming: number }[] =
      await this.ds.query(
        `SELECT count(*) FILTER (WHERE status = 'queued')::int AS queued,
              count(*) FILTER (WHERE status = 'reclaiming')::int AS reclaiming,
              EXTRACT(EPOCH FROM now() - min(queued_at) FILTER (WHERE status = 'queued'))::float8 AS oldest
         FROM voices WHERE provider = $1 AND status IN ('queued','reclaiming')`,
        [provider],
      );
    const limit = effectiveLimit(p.configured_limit, p.account_limit);
    return {
      provider,
      configuredLimit: p.configured_limit,
      accountLimit: p.account_limit,
      limit,
      held,
      foreign: p.foreign_count,
      free: Math.max(0, limit - held - p.foreign_count),
      queued: q.queued,
      oldestQueuedSeconds: q.oldest === null ? null : Math.round(q.oldest),
      reclaiming: q.reclaiming,
      breaker: p.breaker_state,
      claimIntervalMs: p.claim_interval_ms,
    };
  }

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

  /**
   * SCHEDULER_STRATEGY=legacy only: the replaced design's queue scan, oldest first across every
   * provider, with no fairness between users.
   */
  async legacyCandidates(limit: number): Promise<{ id: string; provider: ProviderName }[]> {
    return this.ds.query(
      `SELECT id, provider FROM voices WHERE status = 'queued' AND queued_at <= now()
        ORDER BY queued_at, id LIMIT $1`,
      [limit],
    );
  }

  /**
   * Legacy: the capacity check and the claim are separate statements with no lock, as in the
   * replaced design, so concurrent dispatchers can overshoot the limit (which the provider then
   * refuses with voice_limit_reached). Kept only so benchmarks can compare the two designs.
   */
  async legacyTryClaim(
    id: string,
    provider: ProviderName,
    allocationLeaseSeconds: number,
  ): Promise<Claimed | 'full' | null> {
    const [p]: ProviderRow[] = await this.ds.query(`SELECT * FROM providers WHERE name = $1`, [
      provider,
    ]);
    const [{ n: held }]: { n: number }[] = await this.ds.query(this.heldSql, [provider]);
    if (held + p.foreign_count >= effectiveLimit(p.configured_limit, p.account_limit))
      return 'full';
    const rows: {
      id: string;
      fencing_token: string;
      trace_context: Record<string, string> | null;
    }[] = await this.ds.query(
      `WITH u AS (UPDATE voices SET status = 'allocating', fencing_token = fencing_token + 1,
                claimed_at = now(), allocation_lease_expires_at = now() + make_interval(secs => $2),
                updated_at = now()
           WHERE id = $1 AND status = 'queued' RETURNING id, fencing_token, trace_context),
         e AS (INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
               SELECT id, 'claimed', 'slot_free', 'queued', 'allocating' FROM u)
         SELECT * FROM u`,
      [id, allocationLeaseSeconds],
    );
    return rows.length
      ? {
          voiceId: rows[0].id,
          fencingToken: String(rows[0].fencing_token),
          traceContext: rows[0].trace_context,
        }
      : null;
  }

  /** Legacy: "requeue with jitter" pushes the voice back by a random delay. */
  async legacyRequeue(id: string, jitterMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE voices SET queued_at = now() + make_interval(secs => $2 / 1000.0) WHERE id = $1 AND status = 'queued'`,
      [id, jitterMs],
    );
  }

  /** Allocations whose lease ran out: their worker died or lost its lock. */
  async expiredAllocations(limit: number): Promise<{ id: string; fencingToken: string }[]> {
    const rows: { id: string; fencing_token: string }[] = await this.ds.query(
      `SELECT id, fencing_token FROM voices
        WHERE status = 'allocating' AND allocation_lease_expires_at < now()
        ORDER BY allocation_lease_expires_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({ id: r.id, fencingToken: String(r.fencing_token) }));
  }

  /** Re-claims an allocating voice for a new attempt by this process: bumps lease and attempts. */
  async beginAttempt(
    voiceId: string,
    fencingToken: string,
    allocationLeaseSeconds: number,
  ): Promise<{ voice: Voice; breaker: BreakerState; breakerFailures: number } | null> {
    // One round trip: the fencing check, the counters, a fresh lease, the voice and the breaker.
    const rows: (VoiceRow & { breaker: BreakerState; breaker_failures: number })[] =
      await this.ds.query(
        `WITH u AS (UPDATE voices SET attempts = attempts + 1, remote_tries = remote_tries + 1,
              allocation_lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
        WHERE id = $1 AND status = 'allocating' AND fencing_token = $2
        RETURNING *)
       SELECT u.*, p.breaker_state AS breaker, p.breaker_failures FROM u JOIN providers p ON p.name = u.provider`,
        [voiceId, fencingToken, allocationLeaseSeconds],
      );
    if (!rows.length) return null;
    return {
      voice: voiceFromRow(rows[0]),
      breaker: rows[0].breaker,
      breakerFailures: rows[0].breaker_failures,
    };
  }

  /** Keeps the lease of a running allocation alive; false when the voice moved on. */
  async renewLease(voiceId: string, fencingToken: string, seconds: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `WITH u AS (UPDATE voices SET allocation_lease_expires_at = now() + make_interval(secs => $3)
        WHERE id = $1 AND status = 'allocating' AND fencing_token = $2 RETURNING id)
       SELECT * FROM u`,
      [voiceId, fencingToken, seconds],
    );
    return rows.length > 0;
  }

  /**
   * Claims this period's run of a timed task: true for exactly one caller per period, whatever the
   * number of scheduler replicas, without holding a connection while the task runs.
   */
  async claimTick(name: string, periodSeconds: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `INSERT INTO scheduler_ticks (name, last_run_at, runs) VALUES ($1, now(), 1)
       ON CONFLICT (name) DO UPDATE SET last_run_at = now(), runs = scheduler_ticks.runs + 1
         WHERE scheduler_ticks.last_run_at <= now() - make_interval(secs => $2 * 0.9)
       RETURNING name`,
      [name, periodSeconds],
    );
    return rows.length > 0;
  }

  /**
   * Counts a provider failure that says nothing about one voice (5xx, timeouts, network). Opens
   * the breaker at the threshold, or again at once when the half-open probe fails.
   */
  async recordProviderFailure(provider: ProviderName, threshold: number): Promise<BreakerState> {
    const rows: { breaker_state: BreakerState }[] = await this.ds.query(
      `WITH u AS (UPDATE providers SET
          breaker_failures = breaker_failures + 1,
          breaker_state = CASE WHEN breaker_state = 'half_open' OR breaker_failures + 1 >= $2
                               THEN 'open' ELSE breaker_state END,
          breaker_opened_at = CASE WHEN breaker_state = 'half_open' OR
                                   (breaker_state = 'closed' AND breaker_failures + 1 >= $2)
                              THEN now() ELSE breaker_opened_at END
        WHERE name = $1 RETURNING breaker_state)
       SELECT * FROM u`,
      [provider, threshold],
    );
    return rows[0].breaker_state;
  }

  private async startProbe(
    em: EntityManager,
    provider: ProviderName,
    voiceId: string,
    seconds: number,
  ) {
    await em.query(
      `UPDATE providers SET breaker_state = 'half_open', breaker_probe_voice = $2,
              breaker_probe_until = now() + make_interval(secs => $3) WHERE name = $1`,
      [provider, voiceId, seconds],
    );
  }

  /**
   * The breaker's gate for an allocation about to call its provider (the caller saw the breaker
   * not closed): open and cooling down, or half-open with another voice probing, says no; once
   * the cool-down has passed the first caller becomes the half-open probe.
   */
  async admitCall(
    provider: ProviderName,
    voiceId: string,
    cooldownSeconds: number,
    probeSeconds: number,
  ): Promise<boolean> {
    return this.ds.transaction(async (em: EntityManager) => {
      const [p]: ProviderRow[] = await em.query(
        `SELECT * FROM providers WHERE name = $1 FOR UPDATE`,
        [provider],
      );
      if (p.breaker_state === 'closed') return true;
      if (p.breaker_state === 'half_open' && p.breaker_probe_voice === voiceId) return true;
      if (!probeDue(p, cooldownSeconds)) return false;
      await this.startProbe(em, provider, voiceId, probeSeconds);
      return true;
    });
  }

  /** A provider call succeeded: the breaker closes. Returns true when it was not closed. */
  async recordProviderSuccess(provider: ProviderName): Promise<boolean> {
    const rows: { was: BreakerState }[] = await this.ds.query(
      `WITH o AS (SELECT breaker_state AS was FROM providers WHERE name = $1),
       u AS (UPDATE providers SET breaker_failures = 0, breaker_state = 'closed',
                    breaker_opened_at = NULL, breaker_probe_until = NULL, breaker_probe_voice = NULL
              WHERE name = $1 AND (breaker_failures > 0 OR breaker_state <> 'closed') RETURNING name)
       SELECT was FROM o WHERE EXISTS (SELECT 1 FROM u)`,
      [provider],
    );
    return rows.length > 0 && rows[0].was !== 'closed';
  }
}
