import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type MessageEvent,
} from '@nestjs/common';
import { Observable, type Subscriber } from 'rxjs';
import { AppConfig } from '../config/config.module';
import { toVoiceDto } from '../voice/voice.dto';
import { VoiceRepository } from '../voice/voice.repository';
import {
  VoiceEventStreamRepository,
  type StreamCursor,
  type StreamEventType,
  type StreamRow,
} from './voice-event-stream.repository';

/** How often the replica reads new events for all of its streams (one query per tick). */
const POLL_MS = 200;
/** Rows read per query; a tick reads at most this many pages of new events. */
const PAGE = 500;
const MAX_PAGES_PER_TICK = 4;
/** Voices read at once while building a tick's events. */
const VOICE_READS_AT_ONCE = 8;

/**
 * Where a client resumes: after the event `id`; `half` when that was a re-clone's voice.ready
 * and its voice.remote_changed (same row, id suffixed `_remote`) had not been received.
 */
export interface ResumePoint {
  id: string;
  half: boolean;
}

/** Parses a Last-Event-ID ("123" or "123_remote"); null when it is not one of ours. */
export function parseEventId(raw: string): ResumePoint | null {
  const m = /^(\d{1,19})(_remote)?$/.exec(raw.trim());
  return m ? { id: m[1], half: m[2] === undefined } : null;
}

interface Stream {
  userId: string;
  /** Every event at or before this position has been sent (or was before the stream began). */
  cursor: StreamCursor;
  /** Still replaying what it missed; live events are for it only once it has caught up. */
  replaying: boolean;
  out: Subscriber<MessageEvent>;
}

const compare = (a: StreamCursor, b: StreamCursor): number => {
  const tx = BigInt(a.tx) - BigInt(b.tx);
  if (tx !== 0n) return tx < 0n ? -1 : 1;
  const id = BigInt(a.id) - BigInt(b.id);
  return id === 0n ? 0 : id < 0n ? -1 : 1;
};

/**
 * GET /v1/voices/events: each client's own voice events, live, resumable with Last-Event-ID.
 *
 * One loop per replica serves every stream: each tick reads the events committed since the last
 * one, for all users at once, and hands each to the streams of its voice's user. A stream that
 * resumes replays its missed events from Postgres a page per tick, bounded above by what the
 * loop has read, before it takes live events; both happen in the same loop, so nothing falls
 * between the replay and the live events, and a stream's own cursor drops anything it was sent
 * already (a client may resume here with an id another replica sent it, ahead of this one).
 * Memory is bounded: a page of rows per tick, and a client that does not read its events is
 * dropped by Nest (maxPendingDataLength), reconnects and resumes.
 *
 * Events are read in (tx, id) order, below the oldest running transaction, not by id alone: see
 * VoiceEventStream1765400000000 for why a "last id seen" reader would skip a row whose id was
 * taken before another's but committed after it.
 */
@Injectable()
export class VoiceEventStreamService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(VoiceEventStreamService.name);
  private readonly streams = new Set<Stream>();
  /** Everything at or before this has been handed to the live streams. */
  private head: StreamCursor | null = null;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private ticking = false;
  private stopping = false;

  constructor(
    private readonly config: AppConfig,
    private readonly events: VoiceEventStreamRepository,
    private readonly voices: VoiceRepository,
  ) {}

  /** Streams open on this replica now. */
  get open(): number {
    return this.streams.size;
  }

  /**
   * Validates a resume point before the stream opens: where to start, and the remote_changed
   * still owed for a half-received re-clone. Unknown ids start from now (there is nothing to
   * replay from: events are kept as long as their voices, which are never removed).
   */
  async resumeFrom(
    userId: string,
    resume: ResumePoint | null,
  ): Promise<{ cursor: StreamCursor | null; owed: MessageEvent | null }> {
    if (!resume) return { cursor: null, owed: null };
    const at = await this.events.at(resume.id);
    if (!at) return { cursor: null, owed: null };
    let owed: MessageEvent | null = null;
    if (resume.half && at.remoteChanged && at.userId === userId) {
      owed = this.toEvents([at], await this.voicesOf([at]), true)[0] ?? null;
    }
    return { cursor: { tx: at.tx, id: at.id }, owed };
  }

  /** The client's event stream; `onClose` runs once when it ends, however it ends. */
  stream(
    userId: string,
    start: { cursor: StreamCursor | null; owed: MessageEvent | null },
    onClose: () => void,
  ): Observable<MessageEvent> {
    return new Observable<MessageEvent>((out) => {
      if (this.stopping) {
        out.complete();
        onClose();
        return;
      }
      if (start.owed) out.next(start.owed);
      const stream: Stream = {
        userId,
        cursor: start.cursor ?? { tx: '0', id: '0' },
        replaying: start.cursor !== null,
        out,
      };
      // A new stream without a resume point starts at the loop's position once known.
      if (start.cursor === null && this.head) stream.cursor = this.head;
      this.streams.add(stream);
      this.startLoop();
      return () => {
        this.streams.delete(stream);
        if (this.streams.size === 0) this.stopLoop();
        onClose();
      };
    });
  }

  beforeApplicationShutdown(): void {
    // Clients reconnect (to another replica) with their Last-Event-ID and lose nothing.
    this.stopping = true;
    for (const s of [...this.streams]) s.out.complete();
    this.stopLoop();
  }

  private startLoop(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    this.heartbeat = setInterval(() => {
      for (const s of this.streams) s.out.next({ comment: 'ping' });
    }, this.config.VOICE_EVENTS_HEARTBEAT_SECONDS * 1000);
    void this.tick();
  }

  private stopLoop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timer = null;
    this.heartbeat = null;
    // Nobody listens: the next stream starts from the events of its own time, not from here.
    this.head = null;
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      if (!this.head) {
        this.head = await this.events.head();
        for (const s of this.streams) if (!s.replaying) s.cursor = this.head;
      }
      for (let page = 0; page < MAX_PAGES_PER_TICK && this.timer; page++) {
        const rows = await this.events.next(this.head, PAGE);
        if (rows.length === 0) break;
        await this.deliver(rows, (s) => !s.replaying);
        this.head = rows[rows.length - 1];
        if (rows.length < PAGE) break;
      }
      for (const s of [...this.streams]) {
        if (!s.replaying || !this.head) continue;
        if (compare(s.cursor, this.head) >= 0) {
          s.replaying = false;
          continue;
        }
        const rows = await this.events.replay(s.userId, s.cursor, this.head, PAGE);
        await this.deliver(rows, (x) => x === s);
        if (rows.length < PAGE) {
          s.replaying = false;
          s.cursor = this.head;
        }
      }
    } catch (err) {
      // The streams stay open (with their heartbeats) and the next tick reads from the same place.
      this.logger.warn({ err }, 'voice event stream read failed; trying again');
    } finally {
      this.ticking = false;
    }
  }

  /** Sends each row's events to the chosen streams of its voice's user that have not had it. */
  private async deliver(rows: StreamRow[], chosen: (s: Stream) => boolean): Promise<void> {
    const byUser = new Map<string, Stream[]>();
    for (const s of this.streams) {
      if (!chosen(s)) continue;
      const list = byUser.get(s.userId);
      if (list) list.push(s);
      else byUser.set(s.userId, [s]);
    }
    const wanted = rows.filter((r) => r.kind !== null && byUser.has(r.userId));
    const events = this.toEvents(wanted, await this.voicesOf(wanted), false);
    let i = 0;
    for (const r of wanted) {
      const mine = events.slice(i, i + (r.remoteChanged ? 2 : 1));
      i += mine.length;
      for (const s of byUser.get(r.userId) ?? []) {
        if (!this.streams.has(s) || compare(r, s.cursor) <= 0) continue;
        for (const e of mine) s.out.next(e);
        s.cursor = { tx: r.tx, id: r.id };
      }
    }
    // Rows nobody here was told of still move the chosen streams' cursors past them.
    const last = rows[rows.length - 1];
    if (!last) return;
    for (const list of byUser.values())
      for (const s of list)
        if (compare(last, s.cursor) > 0) s.cursor = { tx: last.tx, id: last.id };
  }

  private async voicesOf(rows: StreamRow[]): Promise<Map<string, object>> {
    const ids = [...new Set(rows.map((r) => r.voiceId))];
    const found = new Map<string, object>();
    for (let k = 0; k < ids.length; k += VOICE_READS_AT_ONCE) {
      await Promise.all(
        ids.slice(k, k + VOICE_READS_AT_ONCE).map(async (id) => {
          const v = await this.voices.findById(id);
          if (v) found.set(id, { ...toVoiceDto(v, null), userId: v.userId });
        }),
      );
    }
    return found;
  }

  /**
   * The SSE messages of rows, as the webhooks' bodies are: {type, timestamp, data} with the voice
   * as GET /v1/voices/{id} shows it now (plus userId). `onlyRemote`: just the re-clone's
   * voice.remote_changed.
   */
  private toEvents(
    rows: StreamRow[],
    voices: Map<string, object>,
    onlyRemote: boolean,
  ): MessageEvent[] {
    const out: MessageEvent[] = [];
    const message = (r: StreamRow, type: StreamEventType, id: string): MessageEvent => ({
      id,
      type,
      data: {
        type,
        timestamp: r.createdAt.toISOString(),
        data: voices.get(r.voiceId) ?? { id: r.voiceId, userId: r.userId },
      },
    });
    for (const r of rows) {
      if (r.kind && !onlyRemote) out.push(message(r, r.kind, r.id));
      if (r.remoteChanged) out.push(message(r, 'voice.remote_changed', `${r.id}_remote`));
    }
    return out;
  }
}
