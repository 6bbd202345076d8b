import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/**
 * What is left to clean up after a voice gave up its slot or was deleted: its remote voice (the
 * slot stays counted until it is gone) and its sample.
 */
@Injectable()
export class VoiceCleanupRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Voices that left the holding states but may still have a remote voice to delete. */
  async cleanupPending(limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE remote_cleanup_pending AND status NOT IN ('allocating','ready','reclaiming')
        ORDER BY updated_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.id);
  }

  /** Marks the remote side of a voice as gone; the slot it occupied becomes free. */
  async clearRemote(id: string, expectedRemoteId: string | null): Promise<boolean> {
    const rows: { id: string }[] = await this.ds.query(
      `WITH u AS (UPDATE voices SET remote_cleanup_pending = false, remote_voice_id = NULL, updated_at = now()
        WHERE id = $1 AND remote_cleanup_pending AND remote_voice_id IS NOT DISTINCT FROM $2
          AND status NOT IN ('allocating','ready','reclaiming')
        RETURNING id)
       SELECT * FROM u`,
      [id, expectedRemoteId],
    );
    return rows.length > 0;
  }

  /** Deleted voices whose sample removal is due: never done, or its last try failed long enough ago. */
  async sampleRemovalsDue(limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE sample_removal_due_at <= now()
        ORDER BY sample_removal_due_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.id);
  }

  /** Storage confirmed the sample gone: nothing is left to re-drive. */
  async sampleRemoved(id: string): Promise<void> {
    await this.ds.query(
      `UPDATE voices SET sample_removal_due_at = NULL, sample_removal_attempts = 0
        WHERE id = $1 AND sample_removal_due_at IS NOT NULL`,
      [id],
    );
  }

  /**
   * A removal failed: the next try waits `baseSeconds` doubled per failure so far, at most
   * `maxSeconds`. Returns the failures counted so far and the wait, or null if nothing is pending.
   */
  async sampleRemovalFailed(
    id: string,
    baseSeconds: number,
    maxSeconds: number,
  ): Promise<{ attempts: number; retryInSeconds: number } | null> {
    const rows: { attempts: number; wait: number }[] = await this.ds.query(
      `WITH w AS (SELECT id, least($2 * power(2, least(sample_removal_attempts, 30)), $3) AS wait
                    FROM voices WHERE id = $1 AND sample_removal_due_at IS NOT NULL)
       UPDATE voices v SET sample_removal_attempts = v.sample_removal_attempts + 1,
              sample_removal_due_at = now() + make_interval(secs => w.wait)
         FROM w WHERE v.id = w.id
       RETURNING v.sample_removal_attempts AS attempts, w.wait::float8 AS wait`,
      [id, baseSeconds, maxSeconds],
    );
    return rows[0] ? { attempts: rows[0].attempts, retryInSeconds: rows[0].wait } : null;
  }

  /** Of these voice ids, the sample keys their rows (in any state) name. */
  async sampleKeysOf(ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const rows: { sample_key: string }[] = await this.ds.query(
      `SELECT sample_key FROM voices WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Set(rows.map((r) => r.sample_key));
  }
}
