import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { HeldVoice, WaitingVoice } from '../policy/reclaim-policy';
import { reclaimingWrite } from '../voice/reclaiming-write';

export interface Victim {
  voiceId: string;
  fencingToken: string;
  remoteVoiceId: string | null;
}

interface HeldRow {
  id: string;
  tid: string;
  /** False when a re-read voice left the provider's ready voices (delta reads only). */
  held?: boolean;
  lease_ms: number | null;
  used_ms: number;
  ready_ms: number;
  first_ms: number;
  use_count: number;
  session_count: number;
}

/**
 * A held voice as the policy sees it, with the row version markVictims re-checks: its physical
 * address, which every update of the row (an activation, a lease, a status change) moves.
 */
export interface SnapshotVoice {
  id: string;
  tid: string;
  voice: HeldVoice;
}

export interface VictimSnapshot {
  now: number;
  slots: number;
  busy: number;
  held: SnapshotVoice[];
  waiting: WaitingVoice[];
  /** The held voices came from this replica's memory, brought up to date by the events since. */
  cached: boolean;
}

/** readState's one row; the json columns are null when empty. */
interface StateRow {
  slots: number;
  held: number;
  now_ms: number;
  event_id: string;
  waiting: { id: string; cloned_before: boolean; queued_ms: number }[] | null;
  changed: HeldRow[] | null;
}

/** What markChosen applied, and how many chosen voices had changed since they were read. */
export interface MarkOutcome {
  victims: Victim[];
  /**
   * Chosen voices the need allowed but the mark could not take: no longer as read (gone, not
   * ready, used, leased or re-cloned since) or locked by another replica's mark.
   */
  stale: number;
}

/**
 * A provider's ready voices as last read, and the voice_events id up to which they are brought
 * up to date. Every status change and every activation that takes a lease writes an event; a
 * use answered under a lease does not (recordLastUse), nor does a direct SQL edit: those leave an
 * entry stale, which markChosen finds (it re-checks each chosen row as read) and answers with a
 * fresh read. So the cache costs at worst a retry, never a wrong eviction.
 */
interface HeldCache {
  voices: Map<string, SnapshotVoice>;
  eventId: string;
  filledAt: number;
}

/**
 * Events re-read behind the last id seen: ids are taken at insert and committed in any order, so
 * an event can appear behind one seen already. A later one than this is caught by the full read.
 */
const EVENT_TRAIL = 256;
/** A full read at least this often bounds how long a missed event can keep a voice out of view. */
const FULL_READ_MS = 30_000;

const HELD_COLUMNS = `v.id, v.ctid::text AS tid,
                (EXTRACT(EPOCH FROM v.lease_expires_at) * 1000)::float8 AS lease_ms,
                (EXTRACT(EPOCH FROM COALESCE(v.last_used_at, v.ready_at)) * 1000)::float8 AS used_ms,
                (EXTRACT(EPOCH FROM v.ready_at) * 1000)::float8 AS ready_ms,
                (EXTRACT(EPOCH FROM COALESCE(v.first_used_at, v.ready_at)) * 1000)::float8 AS first_ms,
                v.use_count, v.session_count`;

function toSnapshotVoice(r: HeldRow): SnapshotVoice {
  return {
    id: r.id,
    tid: r.tid,
    voice: {
      id: r.id,
      lastUsedAt: r.used_ms,
      leaseExpiresAt: r.lease_ms,
      readyAt: r.ready_ms,
      useOrder: 0,
      usage: {
        uses: r.use_count,
        sessions: r.session_count,
        firstUsedAt: r.first_ms,
        lastUsedAt: r.used_ms,
      },
    },
  };
}

/**
 * A chosen voice (c: id, address, and the lease, last use and readiness the decision read) is
 * still as the decision saw it: the same row version, still one of the provider's ready voices,
 * with no lease, use or re-clone since. The address alone would do for a snapshot read a moment
 * ago; a cached one may be old enough for its address to hold a later version of the same row
 * (a line pointer reused after pruning), so the values the rules look at are compared too.
 */
const AS_READ = `v.ctid = c.tid AND v.id = c.id AND v.provider = $1 AND v.status = 'ready'
            AND (EXTRACT(EPOCH FROM v.lease_expires_at) * 1000)::float8 IS NOT DISTINCT FROM c.lease_ms
            AND (EXTRACT(EPOCH FROM COALESCE(v.last_used_at, v.ready_at)) * 1000)::float8 IS NOT DISTINCT FROM c.used_ms
            AND (EXTRACT(EPOCH FROM v.ready_at) * 1000)::float8 IS NOT DISTINCT FROM c.ready_ms`;

/**
 * The end of both victim statements: the voices in `picked` (id and address, locked) become
 * `reclaiming` under a new fencing token, each with its event, and are announced like every other
 * status change, so replicas drop them from their ready-voice caches (src/voice/ready-voice.cache.ts).
 * The need (one row of `want`) comes back even when nothing was marked.
 * `mode` is one of two literals, never outside input.
 */
function markReclaiming(mode: 'idle' | 'backlog'): string {
  return `${reclaimingWrite({
    byAddress: true,
    metadata: `jsonb_build_object('mode', '${mode}', 'lastUsedAt', last_used_at)`,
  })}
         SELECT want.n AS need, u.id, u.fencing_token, u.remote_voice_id,
                CASE WHEN u.id IS NOT NULL THEN pg_notify('voice_status', u.id::text || ':reclaiming') END
           FROM want LEFT JOIN u ON true`;
}

function toVictim(r: {
  id: string;
  fencing_token: string;
  remote_voice_id: string | null;
}): Victim {
  return { voiceId: r.id, fencingToken: String(r.fencing_token), remoteVoiceId: r.remote_voice_id };
}

const limitOrNull = (n: number | undefined) =>
  n === undefined || n === Infinity ? null : Math.max(0, Math.floor(n));

/** SQL of reclaim: choosing least-recently-used idle voices of one provider. */
@Injectable()
export class ReclaimRepository {
  /** Per provider, its ready voices as last read (see HeldCache). */
  private readonly held = new Map<ProviderName, HeldCache>();

  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** True when the provider has queued voices and no free slot: the cheap pre-check. */
  async needsReclaim(provider: ProviderName): Promise<boolean> {
    const [row]: { needs: boolean }[] = await this.ds.query(
      `SELECT EXISTS (SELECT 1 FROM voices WHERE provider = $1 AND status = 'queued') AND
              (SELECT COALESCE(LEAST(configured_limit, account_limit), configured_limit, account_limit, 0) - foreign_count
                 FROM providers WHERE name = $1) <=
              held_slots($1) AS needs`,
      [provider],
    );
    return row.needs;
  }

  /**
   * What the reclaim policy decides on (src/policy/reclaim-policy.ts), read without a lock: the
   * provider's ready voices with their leases, residency and use history, how many slots are busy
   * otherwise, and the first `waiting` queued voices in fair order. The ready voices are kept in
   * memory between decisions and brought up to date by the voice_events since the last read (a
   * handful of rows instead of every ready voice); `fresh` reads them all. The decision is applied
   * by markChosen under the provider lock, which takes a voice only if nothing the decision read
   * about it has changed.
   */
  async snapshot(
    provider: ProviderName,
    waiting: number,
    opts: { fresh?: boolean } = {},
  ): Promise<VictimSnapshot> {
    const cache = this.held.get(provider);
    const reuse = !opts.fresh && cache !== undefined && Date.now() - cache.filledAt < FULL_READ_MS;
    // From memory, one statement reads the rest and the changes; a full read goes first, on the
    // same connection turn (one connection per decision, whatever the pool holds).
    const full = reuse ? undefined : await this.readHeld(provider);
    const state = await this.readState(provider, waiting, reuse ? cache.eventId : null);
    const held = full ?? this.applyChanges(provider, cache!, state);
    const voices = [...held.voices.values()];
    return {
      now: state.now_ms,
      slots: state.slots,
      busy: Math.max(0, state.held - voices.length),
      held: voices,
      waiting: (state.waiting ?? []).map((q) => ({
        id: q.id,
        clonedBefore: q.cloned_before,
        queuedAt: q.queued_ms,
      })),
      cached: reuse,
    };
  }

  /**
   * In one round trip: the slots, the held count, the clock, the first `waiting` queued voices in
   * fair order and, `since` an event id, every voice named by an event after it (and a few ids
   * before it) as it is now, with whether it is still one of the provider's ready voices.
   */
  private async readState(
    provider: ProviderName,
    waiting: number,
    since: string | null,
  ): Promise<StateRow> {
    const [row] = await this.ds.query<StateRow[]>(
      `SELECT COALESCE(LEAST(configured_limit, account_limit), configured_limit, account_limit, 0)
                - foreign_count AS slots,
              held_slots($1) AS held, (EXTRACT(EPOCH FROM now()) * 1000)::float8 AS now_ms,
              (SELECT COALESCE(max(id), 0)::text FROM voice_events) AS event_id,
              (SELECT json_agg(json_build_object('id', q.id, 'cloned_before', q.cloned_before,
                                                 'queued_ms', q.queued_ms)
                               ORDER BY q.fair_tag, q.queued_at, q.id)
                 FROM (SELECT id, fair_tag, queued_at, ready_at IS NOT NULL AS cloned_before,
                              (EXTRACT(EPOCH FROM queued_at) * 1000)::float8 AS queued_ms
                         FROM voices WHERE provider = $1 AND status = 'queued'
                        ORDER BY fair_tag, queued_at, id LIMIT $2) q) AS waiting,
              CASE WHEN $3::bigint IS NOT NULL THEN
                (SELECT json_agg(json_build_object(
                          'id', v.id, 'tid', v.tid, 'lease_ms', v.lease_ms, 'used_ms', v.used_ms,
                          'ready_ms', v.ready_ms, 'first_ms', v.first_ms, 'use_count', v.use_count,
                          'session_count', v.session_count, 'held', v.held))
                   FROM (SELECT ${HELD_COLUMNS}, (v.provider = $1 AND v.status = 'ready') AS held
                           FROM (SELECT DISTINCT voice_id FROM voice_events
                                  WHERE id > $3::bigint - $4) ch
                           JOIN voices v ON v.id = ch.voice_id) v)
              END AS changed
         FROM providers WHERE name = $1`,
      [provider, waiting, since, EVENT_TRAIL],
    );
    return row;
  }

  /** Every ready voice of the provider, and the last event id at the same moment. */
  private async readHeld(provider: ProviderName): Promise<HeldCache> {
    const filledAt = Date.now();
    const rows = await this.ds.query<(HeldRow & { event_id: string })[]>(
      `WITH w AS (SELECT COALESCE(max(id), 0)::text AS event_id FROM voice_events)
       SELECT ${HELD_COLUMNS}, w.event_id
         FROM w LEFT JOIN voices v ON v.provider = $1 AND v.status = 'ready'`,
      [provider],
    );
    const fill: HeldCache = {
      voices: new Map(),
      eventId: rows[0]?.event_id ?? '0',
      filledAt,
    };
    for (const r of rows) if (r.id !== null) fill.voices.set(r.id, toSnapshotVoice(r));
    this.held.set(provider, fill);
    return fill;
  }

  /**
   * The cache brought up to date by readState's changes: a voice named by an event is kept if it
   * is still one of the provider's ready voices, and dropped otherwise.
   */
  private applyChanges(provider: ProviderName, cache: HeldCache, state: StateRow): HeldCache {
    // Replaced, not edited: a snapshot handed out earlier keeps the voices it was given.
    const voices = new Map(cache.voices);
    for (const r of state.changed ?? []) {
      if (r.held) voices.set(r.id, toSnapshotVoice(r));
      else voices.delete(r.id);
    }
    const next: HeldCache = { voices, eventId: state.event_id, filledAt: cache.filledAt };
    if (this.held.get(provider) === cache) this.held.set(provider, next);
    return next;
  }

  /** The next snapshot of the provider reads every ready voice again. */
  forget(provider: ProviderName): void {
    this.held.delete(provider);
  }

  /**
   * Marks the policy's victims `reclaiming`, in its order, under the provider's row lock, and
   * only those still as the decision read them (AS_READ: an activation since then keeps its
   * voice); the rows are reached by address, with no index descent. For a backlog, only as many
   * as the backlog still needs then (reclaim_need, counted after the lock, with the clones the
   * budget lets out); the cost saver (`idle`) takes every voice it chose. One statement, one
   * round trip. Chosen voices found changed make the next snapshot a full read.
   */
  async markChosen(
    provider: ProviderName,
    chosen: readonly SnapshotVoice[],
    cap: { mode: 'backlog'; first: number; reclone: number } | { mode: 'idle' },
  ): Promise<MarkOutcome> {
    if (!chosen.length) return { victims: [], stale: 0 };
    const backlog = cap.mode === 'backlog';
    const rows: {
      need: number | null;
      id: string | null;
      fencing_token: string;
      remote_voice_id: string | null;
    }[] = await this.ds.query(
      // The mark's commit does not wait for its WAL flush (synchronous_commit off for this one
      // transaction): if Postgres crashed right after, the mark is lost and the voices are simply
      // still ready; the reclaim jobs enqueued for them find an older fencing token and do
      // nothing, so no remote voice is deleted for a mark that did not survive. The flush's
      // latency was the tail of the victim choice under a shared disk.
      `WITH sc AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)),
         p AS MATERIALIZED (SELECT name FROM providers, sc WHERE name = $1 FOR UPDATE OF providers),
         want AS MATERIALIZED (SELECT CASE WHEN $7 THEN reclaim_need(name, $2, $3, $4) ELSE $2 END AS n
                                 FROM p),
         c AS (SELECT * FROM unnest($5::uuid[], $6::tid[], $8::float8[], $9::float8[], $10::float8[])
                 WITH ORDINALITY AS c(id, tid, lease_ms, used_ms, ready_ms, ord)),
         picked AS (
           SELECT v.id, v.ctid AS tid FROM voices v JOIN c ON v.ctid = c.tid
            WHERE ${AS_READ}
            ORDER BY c.ord
            LIMIT GREATEST(0, COALESCE((SELECT n FROM want), 0)) FOR UPDATE OF v SKIP LOCKED),
         ${markReclaiming(cap.mode)}`,
      [
        provider,
        chosen.length,
        backlog ? limitOrNull(cap.first) : null,
        backlog ? limitOrNull(cap.reclone) : null,
        chosen.map((v) => v.id),
        chosen.map((v) => v.tid),
        backlog,
        chosen.map((v) => v.voice.leaseExpiresAt),
        chosen.map((v) => v.voice.lastUsedAt),
        chosen.map((v) => v.voice.readyAt),
      ],
    );
    const victims = rows.flatMap((r) => (r.id === null ? [] : [toVictim({ ...r, id: r.id })]));
    // Fewer taken than the need allowed of those offered: the others had changed since they were
    // read (or another replica holds them, which a fresh read sees too).
    const need = Math.max(0, rows[0]?.need ?? 0);
    const stale = Math.max(0, Math.min(chosen.length, need) - victims.length);
    if (stale > 0) this.forget(provider);
    return { victims, stale };
  }

  /** markChosen's victims alone. */
  async markVictims(
    provider: ProviderName,
    chosen: readonly SnapshotVoice[],
    cap: { mode: 'backlog'; first: number; reclone: number } | { mode: 'idle' },
  ): Promise<Victim[]> {
    return (await this.markChosen(provider, chosen, cap)).victims;
  }

  /**
   * SCHEDULER_STRATEGY=legacy only: the replaced design reclaimed as many idle voices as the
   * total queue length, from any provider, whichever provider was actually full.
   */
  async legacyVictims(
    minIdleSeconds: number,
    max: number,
  ): Promise<(Victim & { provider: ProviderName })[]> {
    const rows: {
      id: string;
      fencing_token: string;
      remote_voice_id: string | null;
      provider: ProviderName;
    }[] = await this.ds.query(
      `WITH picked AS (
           SELECT id FROM voices WHERE status = 'ready'
              AND COALESCE(last_used_at, ready_at) < now() - make_interval(secs => $1)
            ORDER BY last_used_at NULLS FIRST
            LIMIT LEAST($2, (SELECT count(*) FROM voices WHERE status = 'queued'))
            FOR UPDATE SKIP LOCKED),
         ${reclaimingWrite({ byAddress: false, metadata: `'{"mode":"legacy"}'::jsonb` })}
         SELECT u.id, u.fencing_token, u.remote_voice_id, u.provider,
                pg_notify('voice_status', id::text || ':reclaiming') FROM u`,
      [minIdleSeconds, max],
    );
    return rows.map((r) => ({
      voiceId: r.id,
      fencingToken: String(r.fencing_token),
      remoteVoiceId: r.remote_voice_id,
      provider: r.provider,
    }));
  }

  /** Reclaims whose job was lost: still `reclaiming` long after they started. */
  async staleReclaims(olderThanSeconds: number, limit: number): Promise<Victim[]> {
    const rows: { id: string; fencing_token: string; remote_voice_id: string | null }[] =
      await this.ds.query(
        `SELECT id, fencing_token, remote_voice_id FROM voices
        WHERE status = 'reclaiming' AND updated_at < now() - make_interval(secs => $1)
        ORDER BY updated_at LIMIT $2`,
        [olderThanSeconds, limit],
      );
    return rows.map(toVictim);
  }
}
