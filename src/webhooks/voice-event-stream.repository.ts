import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/**
 * A position in the event stream: after the row (tx, id), in the order the stream reads
 * (see VoiceEventStream1765400000000). `tx` and `id` are decimal strings (xid8 and bigint).
 */
export interface StreamCursor {
  tx: string;
  id: string;
}

export type StreamEventType =
  'voice.ready' | 'voice.failed' | 'voice.reclaimed' | 'voice.deleted' | 'voice.remote_changed';

/** A voice_events row the stream reads; `kind` is null for a transition users are not told of. */
export interface StreamRow extends StreamCursor {
  voiceId: string;
  userId: string;
  kind: Exclude<StreamEventType, 'voice.remote_changed'> | null;
  /** A ready after an earlier ready: a re-clone, told as voice.remote_changed too. */
  remoteChanged: boolean;
  createdAt: Date;
}

interface Row {
  id: string;
  tx: string;
  voice_id: string;
  user_id: string;
  kind: StreamRow['kind'];
  remote_changed: boolean;
  created_at: Date;
}

// The same events as the webhook fan-out (webhook_fanout() in the webhooks migration).
const SELECT = `
  SELECT p.id::text AS id, p.tx::text AS tx, p.voice_id, v.user_id, p.created_at, p.kind,
         (p.kind = 'voice.ready' AND EXISTS (
            SELECT 1 FROM voice_events r
             WHERE r.voice_id = p.voice_id AND r.to_status = 'ready' AND r.id < p.id)) AS remote_changed
    FROM page p JOIN voices v ON v.id = p.voice_id
   ORDER BY p.tx, p.id`;
const KIND = `CASE
    WHEN e.to_status = 'ready' AND e.from_status IS DISTINCT FROM 'ready' THEN 'voice.ready'
    WHEN e.to_status = 'failed' AND e.from_status IS DISTINCT FROM 'failed' THEN 'voice.failed'
    WHEN e.to_status = 'reclaimed' AND e.from_status IS DISTINCT FROM 'reclaimed' THEN 'voice.reclaimed'
    WHEN e.to_status = 'deleted' AND e.from_status IS DISTINCT FROM 'deleted' THEN 'voice.deleted'
  END`;

const toRow = (r: Row): StreamRow => ({
  tx: r.tx,
  id: r.id,
  voiceId: r.voice_id,
  userId: r.user_id,
  kind: r.kind,
  remoteChanged: r.remote_changed,
  createdAt: r.created_at,
});

/** Reads voice_events for GET /v1/voices/events, in an order no later commit can slip behind. */
@Injectable()
export class VoiceEventStreamRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Where the stream stands now: after every row whose transaction ended. */
  async head(): Promise<StreamCursor> {
    const [r] = await this.ds.query<StreamCursor[]>(
      `SELECT tx::text AS tx, id::text AS id FROM voice_events
        WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx DESC, id DESC LIMIT 1`,
    );
    return r ?? { tx: '0', id: '0' };
  }

  /** An event by its id (where a resuming client stands); null when there is no such event. */
  async at(id: string): Promise<StreamRow | null> {
    const [r] = await this.ds.query<Row[]>(
      `WITH page AS (
         SELECT e.id, e.tx, e.voice_id, e.created_at, ${KIND} AS kind FROM voice_events e
          WHERE e.id = $1)
       ${SELECT}`,
      [id],
    );
    return r ? toRow(r) : null;
  }

  /**
   * The next rows after `after`, up to `limit`, all users and transitions alike (so the cursor
   * moves past the ones nobody is told of), only from transactions that have ended: nothing can
   * commit behind the last row returned (see the migration).
   */
  async next(after: StreamCursor, limit: number): Promise<StreamRow[]> {
    const rows = await this.ds.query<Row[]>(
      `WITH page AS (
         SELECT e.id, e.tx, e.voice_id, e.created_at, ${KIND} AS kind FROM voice_events e
          WHERE (e.tx, e.id) > ($1::xid8, $2::bigint)
            AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY e.tx, e.id LIMIT $3)
       ${SELECT}`,
      [after.tx, after.id, limit],
    );
    return rows.map(toRow);
  }

  /**
   * One user's events after `after` and up to `upTo` (a position the stream has already read
   * everything below, so the range is final), for a reconnecting client's replay.
   */
  async replay(
    userId: string,
    after: StreamCursor,
    upTo: StreamCursor,
    limit: number,
  ): Promise<StreamRow[]> {
    const rows = await this.ds.query<Row[]>(
      `WITH page AS (
         SELECT e.id, e.tx, e.voice_id, e.created_at, ${KIND} AS kind
           FROM voice_events e JOIN voices v ON v.id = e.voice_id
          WHERE (e.tx, e.id) > ($2::xid8, $3::bigint) AND (e.tx, e.id) <= ($4::xid8, $5::bigint)
            AND v.user_id = $1 AND ${KIND} IS NOT NULL
          ORDER BY e.tx, e.id LIMIT $6)
       ${SELECT}`,
      [userId, after.tx, after.id, upTo.tx, upTo.id, limit],
    );
    return rows.map(toRow);
  }
}
