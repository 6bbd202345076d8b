import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The clone budget (ARCHITECTURE invariant 9): a provider account limits clone operations per
 * billing period as well as voices held at once.
 *
 * `provider_accounts` is keyed by (provider, account) rather than by provider alone, because the
 * budget belongs to an account (an API key): a provider may later have several, each with its own
 * budget. Today every provider has exactly one account, `default`; the slot columns still live on
 * `providers` and move here when several keys are supported.
 *
 * Spent this period = `budget_used` (the provider's own counter at its last read, or 0 at the start
 * of a configured period) + `clones_total - clones_at_read` (clones claimed since that read). The
 * claim adds to `clones_total` under the same provider lock as the slot claim, so two replicas never
 * overspend between reads. `clones_at_read` leaves out the voices that were allocating when the read
 * began: their creates may reach the provider after it read its counter, so they stay counted by us
 * (counting a clone twice until the next read is safe; missing one is not).
 *
 * `reclaim_need` gains the clones the budget lets out now: the backlog that justifies a reclaim is
 * only the queued voices that could be cloned into the freed slot now (never-cloned voices up to
 * `first`, voices cloned before up to `reclone`; null = unlimited). Without a budget the count is
 * the one it was, and as cheap.
 */
export class CloneBudget1764921600000 implements MigrationInterface {
  name = 'CloneBudget1764921600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TYPE voice_event_reason ADD VALUE IF NOT EXISTS 'provider_budget'`);
    await q.query(`
      CREATE TABLE provider_accounts (
        provider provider_name NOT NULL REFERENCES providers (name),
        account text NOT NULL DEFAULT 'default',
        -- CLONE_BUDGET_* configuration: overrides what the provider publishes.
        budget_configured int CHECK (budget_configured >= 0),
        -- ElevenLabs' max_voice_add_edits; null when the provider publishes none.
        budget_published int,
        budget_used int NOT NULL DEFAULT 0,
        clones_total bigint NOT NULL DEFAULT 0,
        clones_at_read bigint NOT NULL DEFAULT 0,
        budget_resets_at timestamptz,
        -- 'provider' when the reset time is read from the account, 'configured' when it is ours.
        budget_reset_source text CHECK (budget_reset_source IN ('provider','configured')),
        -- The provider said the budget is spent: no clone before this moment.
        budget_exhausted_until timestamptz,
        -- When the last reading began (a slower, older reading never overwrites a newer one).
        budget_checked_at timestamptz,
        -- The one log line and event for "spent" this period has been written.
        budget_spent_noted boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, account)
      )`);
    await q.query(`INSERT INTO provider_accounts (provider) SELECT name FROM providers`);
    await q.query(`DROP FUNCTION reclaim_need(provider_name, int)`);
    await q.query(`
      CREATE FUNCTION reclaim_need(provider_name, int, int, int) RETURNS int
      LANGUAGE plpgsql VOLATILE AS $$
      DECLARE
        covered int;
        eligible int;
        first_n int;
        reclone_n int;
      BEGIN
        SELECT GREATEST(0, COALESCE(LEAST(configured_limit, account_limit), 0) - foreign_count
                           - held_slots($1))
               + (SELECT count(*)::int FROM voices WHERE provider = $1 AND status = 'reclaiming')
          INTO covered FROM providers WHERE name = $1;
        IF $3 IS NULL AND $4 IS NULL THEN
          SELECT count(*)::int INTO eligible FROM
            (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued' LIMIT covered + $2) q;
        ELSE
          -- Each kind is counted only as far as it could matter.
          SELECT count(*)::int INTO first_n FROM
            (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued' AND ready_at IS NULL
              LIMIT LEAST(covered + $2, COALESCE($3, covered + $2))) q;
          SELECT count(*)::int INTO reclone_n FROM
            (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued' AND ready_at IS NOT NULL
              LIMIT LEAST(covered + $2, COALESCE($4, covered + $2))) q;
          eligible := LEAST(COALESCE($3, first_n + reclone_n), first_n + reclone_n);
        END IF;
        RETURN LEAST($2, eligible - covered);
      END $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION reclaim_need(provider_name, int, int, int)`);
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
    await q.query(`DROP TABLE provider_accounts`);
    // An enum value cannot be dropped; 'provider_budget' stays, unused.
  }
}
