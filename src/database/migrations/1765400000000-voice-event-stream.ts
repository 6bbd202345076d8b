import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The event stream (GET /v1/voices/events) reads voice_events in an order in which a row can never
 * appear behind the reader's cursor after the reader has passed it.
 *
 * voice_events.id is a bigserial, taken when the row is inserted but visible only at commit: a
 * transaction can take id 10, another take 11 and commit first, and a reader that saw 11 and
 * remembers "after 11" never sees 10. So each row also records its transaction id (`tx`, xid8:
 * 64-bit, never wraps), and the stream reads in (tx, id) order, only rows whose transaction is
 * older than the oldest transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`).
 * Every such transaction has ended, so the set of rows below that horizon is final: nothing can
 * commit into it later, and a (tx, id) cursor over it skips nothing and repeats nothing. The
 * cost is that an event waits for every transaction older than its own to end (milliseconds for
 * the service's own statements; a long transaction elsewhere on the server delays the stream by
 * its length, never loses an event).
 *
 * Rows written before this migration get tx 0 (a constant default: no table rewrite), which puts
 * them before every later row, as they were all committed long before any reader of the stream.
 */
export class VoiceEventStream1765400000000 implements MigrationInterface {
  name = 'VoiceEventStream1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE voice_events ADD COLUMN tx xid8 NOT NULL DEFAULT '0'`);
    await q.query(`ALTER TABLE voice_events ALTER COLUMN tx SET DEFAULT pg_current_xact_id()`);
    await q.query(`CREATE INDEX voice_events_stream_idx ON voice_events (tx, id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX voice_events_stream_idx`);
    await q.query(`ALTER TABLE voice_events DROP COLUMN tx`);
  }
}
