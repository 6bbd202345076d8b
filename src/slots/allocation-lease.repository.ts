import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { voiceFromRow, type Voice, type VoiceRow } from '../voice/voice';
import type { BreakerState } from '../providers/breaker.repository';

/**
 * The allocation lease: a claimed voice's attempts, its lease renewals, and the expired leases the
 * sweeper takes over. Statements that write the voices table outside src/voice, on purpose: slots
 * owns the lease of the voices it claimed (a write under the fencing token, no status change).
 */
@Injectable()
export class AllocationLeaseRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

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
}
