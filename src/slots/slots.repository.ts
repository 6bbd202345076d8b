import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { BreakerState } from '../providers/breaker.repository';

export type { BreakerState } from '../providers/breaker.repository';

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

interface ProviderRow {
  configured_limit: number | null;
  account_limit: number | null;
  foreign_count: number;
  claim_interval_ms: number | null;
  breaker_state: BreakerState;
}

export function effectiveLimit(configured: number | null, account: number | null): number {
  if (configured !== null && account !== null) return Math.min(configured, account);
  return configured ?? account ?? 0;
}

/** Voices that occupy (or may occupy) a remote slot right now (held_slots, in a migration). */
export const HELD_SLOTS_SQL = `SELECT held_slots($1) AS n`;

/** SQL of the slot pool: each provider's limits, foreign voices and what its slots hold. */
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

  async capacity(provider: ProviderName): Promise<ProviderCapacity> {
    const [p]: ProviderRow[] = await this.ds.query(`SELECT * FROM providers WHERE name = $1`, [
      provider,
    ]);
    const [{ n: held }]: { n: number }[] = await this.ds.query(HELD_SLOTS_SQL, [provider]);
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
}
