import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A voice's use history for the reclaim policy (src/policy/voice-usage.ts): how many activations
 * and sessions it had since its first use. The policy ranks voices by how often their sessions
 * come, so three numbers per voice are enough; they survive a reclaim (the history is the voice's,
 * not the slot's). Written by the activation's own row update.
 */
export class VoiceUsage1765008000000 implements MigrationInterface {
  name = 'VoiceUsage1765008000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voices ADD COLUMN use_count int NOT NULL DEFAULT 0,
                     ADD COLUMN session_count int NOT NULL DEFAULT 0,
                     ADD COLUMN first_used_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voices DROP COLUMN use_count, DROP COLUMN session_count,
                     DROP COLUMN first_used_at`);
  }
}
