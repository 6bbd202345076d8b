import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * reclaim_need(provider, max): how many victims the provider's backlog needs now, at most `max`:
 * the queued voices beyond the slots the backlog gets anyway (the free ones and those already
 * being reclaimed). The queue is counted only as far as it could matter, so 100k queued voices
 * cost nothing.
 *
 * VOLATILE for the same reason as held_slots: the victim choice is one statement that locks the
 * provider row first and calls this afterwards, and only a volatile function reads with a snapshot
 * taken after that lock, seeing the victims and claims of the previous lock holder.
 */
export class ReclaimNeed1764835200000 implements MigrationInterface {
  name = 'ReclaimNeed1764835200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION reclaim_need(provider_name, int) RETURNS int LANGUAGE sql VOLATILE AS $$
        WITH covered AS (
          SELECT GREATEST(0, COALESCE(LEAST(configured_limit, account_limit), 0) - foreign_count
                             - held_slots($1))
                 + (SELECT count(*)::int FROM voices WHERE provider = $1 AND status = 'reclaiming') AS n
            FROM providers WHERE name = $1)
        SELECT LEAST($2, (SELECT count(*)::int FROM
                            (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued'
                              LIMIT (SELECT n + $2 FROM covered)) q) - (SELECT n FROM covered))
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION reclaim_need(provider_name, int)`);
  }
}
