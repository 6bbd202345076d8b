import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** What the scheduler's sweeps and timers read of voices: lost metadata jobs, lease ends. */
@Injectable()
export class VoiceSweepsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Pending voices whose metadata job may have been lost (Redis outage between commit and add). */
  async stalePending(olderThanSeconds: number, limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2`,
      [olderThanSeconds, limit],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Milliseconds until the next lease ends among voices that hold a slot on a job's behalf, by
   * Postgres's clock: an allocation's lease, or for a reclaim (which has no lease column) the time
   * it started plus `reclaimLeaseSeconds`. Leases that ended already are left out: the sweep that
   * just ran handled them (or re-enqueued their job), so they must not make it spin. Null when
   * none ends later. Reads only those voices (a few per slot), through the partial index of
   * holding voices.
   */
  async nextLeaseEndInMs(reclaimLeaseSeconds: number): Promise<number | null> {
    const [row]: { ms: number | null }[] = await this.ds.query(
      `SELECT (EXTRACT(EPOCH FROM min(ends) - now()) * 1000)::float8 AS ms
         FROM (SELECT CASE WHEN status = 'allocating' THEN allocation_lease_expires_at
                           ELSE updated_at + make_interval(secs => $1) END AS ends
                 FROM voices WHERE status IN ('allocating', 'reclaiming')) l
        WHERE ends > now()`,
      [reclaimLeaseSeconds],
    );
    return row?.ms ?? null;
  }
}
