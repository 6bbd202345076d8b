import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * held_slots(provider): the voices that occupy (or may occupy) a remote slot of a provider — the
 * one definition of "held" that every capacity check uses.
 *
 * VOLATILE is the point, not a default: a volatile function takes a fresh snapshot for its query,
 * while the rest of a statement reads the snapshot taken when the statement began. The claim is
 * one statement that first locks the provider row (FOR UPDATE) and then counts through this
 * function, so the count is taken after the lock is held and sees every voice claimed by the
 * previous lock holder, even one that committed while this statement waited for the lock. A plain
 * subquery (or a STABLE function) would count from the earlier snapshot and let two racing claims
 * both fill the same free slots.
 */
export class HeldSlots1764662400000 implements MigrationInterface {
  name = 'HeldSlots1764662400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION held_slots(provider_name) RETURNS int LANGUAGE sql VOLATILE AS $$
        SELECT count(*)::int FROM voices
         WHERE provider = $1 AND (status IN ('allocating','ready','reclaiming') OR remote_cleanup_pending)
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION held_slots(provider_name)`);
  }
}
