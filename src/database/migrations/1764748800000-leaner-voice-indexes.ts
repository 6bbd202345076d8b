import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fewer index entries written per claim and per allocation attempt, the hottest writes on `voices`:
 *
 * - `voices_user_pending_idx` covered queued and allocating voices for the next fair tag of a user.
 *   A claimed voice's tag never exceeds the provider's virtual time (the claim raises it to the
 *   largest tag it takes), so the tag only needs the user's queued voices: every claimed row no
 *   longer adds an entry.
 * - `voices_allocation_lease_idx` served only the sweeper's scan of allocating voices, which are
 *   few (at most the slot limits) and found through `voices_holding_idx`. Without it the lease
 *   column is unindexed, so renewing a lease or starting an attempt can be a HOT update that
 *   writes no index at all.
 */
export class LeanerVoiceIndexes1764748800000 implements MigrationInterface {
  name = 'LeanerVoiceIndexes1764748800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX voices_allocation_lease_idx`);
    await q.query(`DROP INDEX voices_user_pending_idx`);
    await q.query(
      `CREATE INDEX voices_user_queued_idx ON voices (user_id, provider, fair_tag) WHERE status = 'queued'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX voices_user_queued_idx`);
    await q.query(
      `CREATE INDEX voices_user_pending_idx ON voices (user_id, provider, fair_tag) WHERE status IN ('queued','allocating')`,
    );
    await q.query(
      `CREATE INDEX voices_allocation_lease_idx ON voices (allocation_lease_expires_at) WHERE status = 'allocating'`,
    );
  }
}
