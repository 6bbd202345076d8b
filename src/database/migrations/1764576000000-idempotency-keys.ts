import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Upload idempotency keys (Stripe's semantics): a replay answers the first response. */
export class IdempotencyKeys1764576000000 implements MigrationInterface {
  name = 'IdempotencyKeys1764576000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE idempotency_keys (
        user_id text NOT NULL,
        key text NOT NULL,
        -- sha256 of the request's meaning (fields and file hash), not of its raw bytes: two
        -- uploads of the same thing carry different multipart boundaries.
        fingerprint text NOT NULL,
        voice_id uuid NOT NULL,
        response jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, key)
      )`);
    await q.query(`CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE idempotency_keys`);
  }
}
