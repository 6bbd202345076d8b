import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhooks (CONTRACT.md "Push notifications") with a transactional outbox: every voice event row
 * that users care about fans out, in the statement that writes it (an AFTER INSERT trigger on
 * voice_events, which every transition writes in its own statement), into one delivery row per
 * subscribed endpoint. So no event is lost or invented when a process dies between the commit and
 * the delivery: the delivery workers only ever read rows that committed with their transition.
 */
export class Webhooks1765300000000 implements MigrationInterface {
  name = 'Webhooks1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE webhook_delivery_status AS ENUM ('pending', 'delivered', 'failed')`);
    await q.query(`
      CREATE TABLE webhook_endpoints (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        url text NOT NULL,
        events text[] NOT NULL,
        -- whsec_<base64>: needed in clear to sign; shown to the admin once, never answered again.
        secret text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE webhook_deliveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        -- The webhook-id header: one per event (and endpoint), stable across retries.
        event_id text NOT NULL,
        event_type text NOT NULL,
        voice_id uuid,
        source_event_id bigint,
        -- The body, fixed at the first attempt so every retry sends the same bytes.
        payload text,
        status webhook_delivery_status NOT NULL DEFAULT 'pending',
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        -- A worker sending it holds it until then; a killed worker's delivery is taken again after.
        lease_until timestamptz,
        history jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        UNIQUE (endpoint_id, event_id)
      )`);
    await q.query(`CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
                     WHERE status = 'pending'`);
    await q.query(`CREATE INDEX webhook_deliveries_endpoint_idx
                     ON webhook_deliveries (endpoint_id, created_at DESC)`);
    await q.query(`
      CREATE FUNCTION webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        kind text;
      BEGIN
        kind := CASE
          WHEN NEW.to_status = 'ready' AND NEW.from_status IS DISTINCT FROM 'ready' THEN 'voice.ready'
          WHEN NEW.to_status = 'failed' AND NEW.from_status IS DISTINCT FROM 'failed' THEN 'voice.failed'
          WHEN NEW.to_status = 'reclaimed' AND NEW.from_status IS DISTINCT FROM 'reclaimed' THEN 'voice.reclaimed'
          WHEN NEW.to_status = 'deleted' AND NEW.from_status IS DISTINCT FROM 'deleted' THEN 'voice.deleted'
        END;
        IF kind IS NULL THEN RETURN NULL; END IF;
        INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, voice_id, source_event_id)
          SELECT e.id, 'evt_' || NEW.id, kind, NEW.voice_id, NEW.id FROM webhook_endpoints e
           WHERE e.deleted_at IS NULL AND kind = ANY (e.events);
        -- Ready again after an earlier ready: a re-clone, under a new remote voice id.
        IF kind = 'voice.ready' AND EXISTS (
             SELECT 1 FROM voice_events p
              WHERE p.voice_id = NEW.voice_id AND p.to_status = 'ready' AND p.id < NEW.id) THEN
          INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, voice_id, source_event_id)
            SELECT e.id, 'evt_' || NEW.id || '_remote', 'voice.remote_changed', NEW.voice_id, NEW.id
              FROM webhook_endpoints e
             WHERE e.deleted_at IS NULL AND 'voice.remote_changed' = ANY (e.events);
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER voice_events_webhooks AFTER INSERT ON voice_events
                     FOR EACH ROW EXECUTE FUNCTION webhook_fanout()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER voice_events_webhooks ON voice_events`);
    await q.query(`DROP FUNCTION webhook_fanout()`);
    await q.query(`DROP TABLE webhook_deliveries`);
    await q.query(`DROP TABLE webhook_endpoints`);
    await q.query(`DROP TYPE webhook_delivery_status`);
  }
}
