import type { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1764489600000 implements MigrationInterface {
  name = 'InitialSchema1764489600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE provider_name AS ENUM ('elevenlabs', 'cartesia')`);
    await q.query(
      `CREATE TYPE voice_status AS ENUM ('pending','queued','allocating','ready','reclaiming','reclaimed','failed','deleted')`,
    );
    await q.query(
      `CREATE TYPE voice_event_type AS ENUM ('uploaded','metadata_ok','metadata_failed','claimed','attempt_failed','ready','requeued','failed','activated','reclaiming','reclaimed','deleted','remote_deleted','retried','adopted','orphan_deleted','remote_missing')`,
    );
    await q.query(
      `CREATE TYPE voice_event_reason AS ENUM ('upload','metadata_valid','sample_unreadable','sample_too_short','sample_too_long','slot_free','remote_created','remote_adopted','provider_retryable','provider_capacity','provider_fatal','attempts_exhausted','lease_expired','activation','idle_reclaim','remote_missing','user_delete','admin_retry','stale_create_compensated','reconciliation')`,
    );
    await q.query(`
      CREATE TABLE providers (
        name provider_name PRIMARY KEY,
        configured_limit int,
        account_limit int,
        foreign_count int NOT NULL DEFAULT 0,
        virtual_time bigint NOT NULL DEFAULT 0,
        account_checked_at timestamptz,
        -- Moving average of the time between claimed voices: the base of queue time estimates.
        last_claim_at timestamptz,
        claim_interval_ms double precision,
        -- Circuit breaker shared by every replica.
        breaker_state text NOT NULL DEFAULT 'closed' CHECK (breaker_state IN ('closed','open','half_open')),
        breaker_failures int NOT NULL DEFAULT 0,
        breaker_opened_at timestamptz,
        breaker_probe_until timestamptz,
        breaker_probe_voice uuid,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`INSERT INTO providers (name) VALUES ('elevenlabs'), ('cartesia')`);
    await q.query(`
      CREATE TABLE voices (
        id uuid PRIMARY KEY,
        user_id text NOT NULL,
        name text NOT NULL,
        provider provider_name NOT NULL,
        language text,
        status voice_status NOT NULL,
        fencing_token bigint NOT NULL DEFAULT 0,
        attempts int NOT NULL DEFAULT 0,
        -- Provider calls that may have created a remote voice in this cycle; never decremented,
        -- so a retry after any of them looks the idempotency key up before it clones again.
        remote_tries int NOT NULL DEFAULT 0,
        fair_tag bigint,
        queued_at timestamptz,
        claimed_at timestamptz,
        allocation_lease_expires_at timestamptz,
        lease_expires_at timestamptz,
        last_used_at timestamptz,
        ready_at timestamptz,
        remote_voice_id text,
        remote_cleanup_pending boolean NOT NULL DEFAULT false,
        sample_key text NOT NULL,
        sample_content_type text NOT NULL,
        sample_filename text NOT NULL,
        sample_size_bytes bigint NOT NULL,
        sample_sha256 text NOT NULL,
        sample_format text,
        sample_duration_ms int,
        sample_rate int,
        sample_channels int,
        failure_code text,
        failure_message text,
        -- The upload request's W3C trace context: allocation jobs continue that trace.
        trace_context jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // The dispatcher's claim: queued voices of one provider in fair order, read by index with LIMIT.
    await q.query(
      `CREATE INDEX voices_claim_idx ON voices (provider, fair_tag, queued_at, id) WHERE status = 'queued'`,
    );
    // Slot counting per provider touches only the few holding rows.
    await q.query(
      `CREATE INDEX voices_holding_idx ON voices (provider, status) WHERE status IN ('allocating','ready','reclaiming') OR remote_cleanup_pending`,
    );
    // Reclaim victims: least recently used ready voices of one provider.
    await q.query(
      `CREATE INDEX voices_reclaim_idx ON voices (provider, last_used_at) WHERE status = 'ready'`,
    );
    // Sweeper: expired allocation leases.
    await q.query(
      `CREATE INDEX voices_allocation_lease_idx ON voices (allocation_lease_expires_at) WHERE status = 'allocating'`,
    );
    await q.query(
      `CREATE INDEX voices_pending_idx ON voices (created_at) WHERE status = 'pending'`,
    );
    // A user's list, newest first, with a keyset cursor.
    await q.query(
      `CREATE INDEX voices_user_list_idx ON voices (user_id, created_at DESC, id DESC)`,
    );
    await q.query(
      `CREATE INDEX voices_user_pending_idx ON voices (user_id, provider, fair_tag) WHERE status IN ('queued','allocating')`,
    );
    await q.query(`
      CREATE TABLE voice_events (
        id bigserial PRIMARY KEY,
        voice_id uuid NOT NULL REFERENCES voices(id) ON DELETE CASCADE,
        type voice_event_type NOT NULL,
        reason voice_event_reason NOT NULL,
        from_status voice_status,
        to_status voice_status NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX voice_events_voice_idx ON voice_events (voice_id, created_at)`);
    // Timed work claims its tick here, so N scheduler replicas run each task once per period.
    await q.query(`
      CREATE TABLE scheduler_ticks (
        name text PRIMARY KEY,
        last_run_at timestamptz NOT NULL DEFAULT 'epoch',
        runs bigint NOT NULL DEFAULT 0
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE scheduler_ticks`);
    await q.query(`DROP TABLE voice_events`);
    await q.query(`DROP TABLE voices`);
    await q.query(`DROP TABLE providers`);
    await q.query(`DROP TYPE voice_event_reason`);
    await q.query(`DROP TYPE voice_event_type`);
    await q.query(`DROP TYPE voice_status`);
    await q.query(`DROP TYPE provider_name`);
  }
}
