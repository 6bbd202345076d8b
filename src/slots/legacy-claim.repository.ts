import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { Claimed } from './claim.repository';
import { effectiveLimit, HELD_SLOTS_SQL } from './slots.repository';

interface LimitsRow {
  configured_limit: number | null;
  account_limit: number | null;
  foreign_count: number;
}

/**
 * SCHEDULER_STRATEGY=legacy only: the replaced design's queue scan and claim. Its claim writes
 * the voices table (queued -> allocating) as the production claim does: slots owns the claim.
 */
@Injectable()
export class LegacyClaimRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** The replaced design's queue scan, oldest first across every provider, with no fairness. */
  async candidates(limit: number): Promise<{ id: string; provider: ProviderName }[]> {
    return this.ds.query(
      `SELECT id, provider FROM voices WHERE status = 'queued' AND queued_at <= now()
        ORDER BY queued_at, id LIMIT $1`,
      [limit],
    );
  }

  /**
   * The capacity check and the claim are separate statements with no lock, as in the replaced
   * design, so concurrent dispatchers can overshoot the limit (which the provider then refuses
   * with voice_limit_reached). Kept only so benchmarks can compare the two designs.
   */
  async tryClaim(
    id: string,
    provider: ProviderName,
    allocationLeaseSeconds: number,
  ): Promise<Claimed | 'full' | null> {
    const [p]: LimitsRow[] = await this.ds.query(`SELECT * FROM providers WHERE name = $1`, [
      provider,
    ]);
    const [{ n: held }]: { n: number }[] = await this.ds.query(HELD_SLOTS_SQL, [provider]);
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
}
