import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import type { ProviderName } from '../config/app-config';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** The breaker's columns of a provider row. */
interface BreakerRow {
  breaker_state: BreakerState;
  breaker_opened_at: Date | null;
  breaker_probe_until: Date | null;
  breaker_probe_voice: string | null;
}

/** Whether a provider call may go out now, under the provider's breaker. */
export function probeDue(p: BreakerRow, cooldownSeconds: number, now = Date.now()): boolean {
  return p.breaker_state === 'open'
    ? (p.breaker_opened_at?.getTime() ?? 0) + cooldownSeconds * 1000 <= now
    : (p.breaker_probe_until?.getTime() ?? 0) <= now;
}

/**
 * Each provider's circuit breaker, kept on its row of the providers table (one breaker for every
 * replica). The claim statement (src/slots/claim.repository.ts) reads the same columns and starts
 * the half-open probe itself, in the claim's own statement.
 */
@Injectable()
export class BreakerRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

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
      const [p]: BreakerRow[] = await em.query(
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
