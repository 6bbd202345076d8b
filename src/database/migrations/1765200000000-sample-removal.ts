import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A deleted voice's sample removal, kept in Postgres rather than only in its clean-up job: a job
 * lost with Redis, or failed for good against object storage, no longer leaves the sample behind.
 * `sample_removal_due_at` is set by the delete and cleared once storage confirms the removal; the
 * sweep re-drives rows whose time has come, and a failed removal pushes it back (attempts double
 * the wait). Voices deleted before this migration are marked too: removing a sample that is
 * already gone is a no-op, and one left behind by a lost job goes now.
 */
export class SampleRemoval1765200000000 implements MigrationInterface {
  name = 'SampleRemoval1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voices ADD COLUMN sample_removal_due_at timestamptz,
                     ADD COLUMN sample_removal_attempts int NOT NULL DEFAULT 0`);
    await q.query(`UPDATE voices SET sample_removal_due_at = now() WHERE status = 'deleted'`);
    await q.query(
      `CREATE INDEX voices_sample_removal_idx ON voices (sample_removal_due_at)
         WHERE sample_removal_due_at IS NOT NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX voices_sample_removal_idx`);
    await q.query(`ALTER TABLE voices DROP COLUMN sample_removal_due_at,
                     DROP COLUMN sample_removal_attempts`);
  }
}
