import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Provider events for webhooks (CONTRACT.md "Push notifications"): provider.breaker_opened,
 * provider.breaker_closed, provider.clone_budget_low and provider.clone_budget_exhausted, each
 * written by a trigger on the row whose change is the transition (providers.breaker_state,
 * provider_accounts' budget counters), so the event commits with it or not at all, whichever code
 * path makes the change. Each event is a provider_events row and one webhook_deliveries row per
 * subscribed endpoint, as voice events are (see Webhooks1765300000000).
 *
 * The breaker: opened when it leaves `closed`, closed when it returns to it. A failed half-open
 * probe (half_open → open) is not announced again: the provider has been out all along.
 *
 * The budget, computed as budgetState() does (src/providers/provider-accounts.repository.ts):
 * limit = configured or published budget, spent = the provider's counter at its last read plus
 * our clones since, remaining = limit - spent (0 while the provider says it is spent). "Low" is
 * remaining at or below `budget_low_ratio` of the limit (CLONE_BUDGET_LOW_RATIO, written by the
 * service at start), "exhausted" is nothing remaining. Each is announced once per billing period
 * (the period is known by its reset time): the period whose low was announced is remembered on
 * the row, so a counter that a new reading corrects up and down around the threshold does not
 * announce it again, and the next period announces it afresh.
 */
export class ProviderEvents1765400001000 implements MigrationInterface {
  name = 'ProviderEvents1765400001000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE provider_events (
        id bigserial PRIMARY KEY,
        provider provider_name NOT NULL,
        type text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`ALTER TABLE webhook_deliveries ADD COLUMN provider provider_name,
                     ADD COLUMN provider_event_id bigint`);
    await q.query(`ALTER TABLE provider_accounts
                     ADD COLUMN budget_low_ratio float8 NOT NULL DEFAULT 0.1,
                     -- The period (its reset time, or 'none') whose low / exhausted was announced.
                     ADD COLUMN budget_low_noted text,
                     ADD COLUMN budget_exhausted_noted text`);
    await q.query(`
      CREATE FUNCTION provider_event(p provider_name, kind text) RETURNS void
      LANGUAGE plpgsql AS $$
      DECLARE
        eid bigint;
      BEGIN
        INSERT INTO provider_events (provider, type) VALUES (p, kind) RETURNING id INTO eid;
        INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, provider, provider_event_id)
          SELECT e.id, 'evt_p' || eid, kind, p, eid FROM webhook_endpoints e
           WHERE e.deleted_at IS NULL AND kind = ANY (e.events);
      END $$`);
    await q.query(`
      CREATE FUNCTION provider_breaker_events() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.breaker_state = 'closed' AND NEW.breaker_state <> 'closed' THEN
          PERFORM provider_event(NEW.name, 'provider.breaker_opened');
        ELSIF OLD.breaker_state <> 'closed' AND NEW.breaker_state = 'closed' THEN
          PERFORM provider_event(NEW.name, 'provider.breaker_closed');
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER providers_breaker_events AFTER UPDATE OF breaker_state ON providers
                     FOR EACH ROW WHEN (OLD.breaker_state IS DISTINCT FROM NEW.breaker_state)
                     EXECUTE FUNCTION provider_breaker_events()`);
    // BEFORE, so the row itself remembers what was announced, in the same write.
    await q.query(`
      CREATE FUNCTION provider_budget_events() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        lim int := COALESCE(NEW.budget_configured, NEW.budget_published);
        remaining bigint;
        period text := COALESCE(NEW.budget_resets_at::text, 'none');
      BEGIN
        IF lim IS NULL THEN RETURN NEW; END IF;
        remaining := CASE WHEN NEW.budget_exhausted_until > now() THEN 0
                          ELSE GREATEST(0, lim - NEW.budget_used
                                           - GREATEST(0, NEW.clones_total - NEW.clones_at_read)) END;
        IF remaining <= lim * NEW.budget_low_ratio
           AND NEW.budget_low_noted IS DISTINCT FROM period THEN
          NEW.budget_low_noted := period;
          PERFORM provider_event(NEW.provider, 'provider.clone_budget_low');
        END IF;
        IF remaining = 0 AND NEW.budget_exhausted_noted IS DISTINCT FROM period THEN
          NEW.budget_exhausted_noted := period;
          PERFORM provider_event(NEW.provider, 'provider.clone_budget_exhausted');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER provider_accounts_budget_events BEFORE UPDATE ON provider_accounts
                     FOR EACH ROW EXECUTE FUNCTION provider_budget_events()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER provider_accounts_budget_events ON provider_accounts`);
    await q.query(`DROP FUNCTION provider_budget_events()`);
    await q.query(`DROP TRIGGER providers_breaker_events ON providers`);
    await q.query(`DROP FUNCTION provider_breaker_events()`);
    await q.query(`DROP FUNCTION provider_event(provider_name, text)`);
    await q.query(`ALTER TABLE provider_accounts DROP COLUMN budget_low_ratio,
                     DROP COLUMN budget_low_noted, DROP COLUMN budget_exhausted_noted`);
    await q.query(`DELETE FROM webhook_deliveries WHERE provider_event_id IS NOT NULL`);
    await q.query(
      `ALTER TABLE webhook_deliveries DROP COLUMN provider, DROP COLUMN provider_event_id`,
    );
    await q.query(`DROP TABLE provider_events`);
  }
}
