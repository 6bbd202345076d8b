import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the upload's probe found in the sample (format, duration, rate, channels, true type), kept
 * so the metadata job validates it without reading and parsing the sample again. A column of its
 * own rather than the sample_* columns: those stay empty until the metadata job has validated the
 * sample, as the API shows them. Null for voices uploaded before: their job probes as it did.
 */
export class UploadProbe1765500000000 implements MigrationInterface {
  name = 'UploadProbe1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voices ADD COLUMN upload_probe jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voices DROP COLUMN upload_probe`);
  }
}
