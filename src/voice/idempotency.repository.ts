import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';

/** How long a key is remembered: at least the 24 hours clients may retry within. */
export const IDEMPOTENCY_TTL_HOURS = 24;

export interface IdempotencyRecord {
  fingerprint: string;
  voiceId: string;
  response: unknown;
}

/** SQL of upload idempotency keys, scoped per user. */
@Injectable()
export class IdempotencyRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async find(userId: string, key: string): Promise<IdempotencyRecord | null> {
    const rows: { fingerprint: string; voice_id: string; response: unknown }[] =
      await this.ds.query(
        `SELECT fingerprint, voice_id, response FROM idempotency_keys
        WHERE user_id = $1 AND key = $2 AND expires_at > now()`,
        [userId, key],
      );
    return rows.length
      ? { fingerprint: rows[0].fingerprint, voiceId: rows[0].voice_id, response: rows[0].response }
      : null;
  }

  /**
   * Records the key with the response it produced, in the transaction that creates the voice.
   * A concurrent request with the same key waits on the unique index until this commits, then
   * finds the row: so identical concurrent requests create one voice. An expired key is reused.
   * Returns false when the key is already taken.
   */
  async claim(
    em: EntityManager,
    userId: string,
    key: string,
    record: IdempotencyRecord,
  ): Promise<boolean> {
    const rows: unknown[] = await em.query(
      `INSERT INTO idempotency_keys (user_id, key, fingerprint, voice_id, response, expires_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, now() + make_interval(hours => $6))
       ON CONFLICT (user_id, key) DO UPDATE SET
         fingerprint = EXCLUDED.fingerprint, voice_id = EXCLUDED.voice_id, response = EXCLUDED.response,
         created_at = now(), expires_at = EXCLUDED.expires_at
       WHERE idempotency_keys.expires_at <= now()
       RETURNING key`,
      [
        userId,
        key,
        record.fingerprint,
        record.voiceId,
        JSON.stringify(record.response),
        IDEMPOTENCY_TTL_HOURS,
      ],
    );
    return rows.length > 0;
  }

  async purgeExpired(): Promise<void> {
    await this.ds.query(`DELETE FROM idempotency_keys WHERE expires_at <= now()`);
  }
}
