import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { HeldVoice, WaitingVoice } from '../policy/reclaim-policy';

export interface Victim {
  voiceId: string;
  fencingToken: string;
  remoteVoiceId: string | null;
}

interface HeldRow {
  id: string;
  tid: string;
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
}

/**
 * The end of both victim statements: the voices in `picked` (id and address, locked) become
 * `reclaiming` under a new fencing token, each with its event, and are announced like every other
 * status change, so replicas drop them from their ready-voice caches (src/voice/ready-voice.cache.ts).
 * `mode` is one of two literals, never outside input.
 */
function markReclaiming(mode: 'idle' | 'backlog'): string {
  return `u AS (
           UPDATE voices v SET status = 'reclaiming', fencing_token = v.fencing_token + 1, updated_at = now()
             FROM picked WHERE v.ctid = picked.tid AND v.id = picked.id AND v.status = 'ready'
           RETURNING v.id, v.fencing_token, v.remote_voice_id, v.last_used_at),
         e AS (
           INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
           SELECT id, 'reclaiming', 'idle_reclaim', 'ready', 'reclaiming',
                  jsonb_build_object('mode', '${mode}', 'lastUsedAt', last_used_at) FROM u)
         SELECT id, fencing_token, remote_voice_id, pg_notify('voice_status', id::text || ':reclaiming') FROM u`;
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
   * provider's ready voices with their leases, residency and use history (at most the slot limit
   * of rows), how many slots are busy otherwise, and the first `waiting` queued voices in fair
   * order. The decision is applied by markVictims under the provider lock, which takes a voice
   * only if nothing the decision read about it has changed.
   */
  async snapshot(provider: ProviderName, waiting: number): Promise<VictimSnapshot> {
    const [held, queued, counts] = await Promise.all([
      this.ds.query<HeldRow[]>(
        `SELECT id, ctid::text AS tid,
                (EXTRACT(EPOCH FROM lease_expires_at) * 1000)::float8 AS lease_ms,
                (EXTRACT(EPOCH FROM COALESCE(last_used_at, ready_at)) * 1000)::float8 AS used_ms,
                (EXTRACT(EPOCH FROM ready_at) * 1000)::float8 AS ready_ms,
                (EXTRACT(EPOCH FROM COALESCE(first_used_at, ready_at)) * 1000)::float8 AS first_ms,
                use_count, session_count
           FROM voices WHERE provider = $1 AND status = 'ready'`,
        [provider],
      ),
      this.ds.query<{ id: string; cloned_before: boolean; queued_ms: number }[]>(
        `SELECT id, ready_at IS NOT NULL AS cloned_before,
                (EXTRACT(EPOCH FROM queued_at) * 1000)::float8 AS queued_ms
           FROM voices WHERE provider = $1 AND status = 'queued'
          ORDER BY fair_tag, queued_at, id LIMIT $2`,
        [provider, waiting],
      ),
      this.ds.query<{ slots: number; held: number; now_ms: number }[]>(
        `SELECT COALESCE(LEAST(configured_limit, account_limit), configured_limit, account_limit, 0)
                  - foreign_count AS slots,
                held_slots($1) AS held, (EXTRACT(EPOCH FROM now()) * 1000)::float8 AS now_ms
           FROM providers WHERE name = $1`,
        [provider],
      ),
    ]);
    const c = counts[0];
    return {
      now: c.now_ms,
      slots: c.slots,
      busy: Math.max(0, c.held - held.length),
      held: held.map((r) => ({
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
      })),
      waiting: queued.map((q) => ({
        id: q.id,
        clonedBefore: q.cloned_before,
        queuedAt: q.queued_ms,
      })),
    };
  }

  /**
   * Marks the policy's victims `reclaiming`, in its order, under the provider's row lock, and
   * only those whose row has not changed since the decision read it (an activation since then
   * keeps its voice); the rows are reached by address, with no index descent. For a backlog, only
   * as many as the backlog still needs then (reclaim_need, counted after the lock, with the
   * clones the budget lets out); the cost saver (`idle`) takes every voice it chose. One
   * statement, one round trip.
   */
  async markVictims(
    provider: ProviderName,
    chosen: readonly { id: string; tid: string }[],
    cap: { mode: 'backlog'; first: number; reclone: number } | { mode: 'idle' },
  ): Promise<Victim[]> {
    if (!chosen.length) return [];
    const backlog = cap.mode === 'backlog';
    const rows: { id: string; fencing_token: string; remote_voice_id: string | null }[] =
      await this.ds.query(
        `WITH p AS MATERIALIZED (SELECT name FROM providers WHERE name = $1 FOR UPDATE),
         want AS MATERIALIZED (SELECT CASE WHEN $7 THEN reclaim_need(name, $2, $3, $4) ELSE $2 END AS n
                                 FROM p),
         c AS (SELECT * FROM unnest($5::uuid[], $6::tid[]) WITH ORDINALITY AS c(id, tid, ord)),
         picked AS (
           SELECT v.id, v.ctid AS tid FROM voices v JOIN c ON v.ctid = c.tid
            WHERE v.id = c.id AND v.provider = $1 AND v.status = 'ready'
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
        ],
      );
    return rows.map(toVictim);
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
         u AS (
           UPDATE voices v SET status = 'reclaiming', fencing_token = v.fencing_token + 1, updated_at = now()
             FROM picked WHERE v.id = picked.id AND v.status = 'ready'
           RETURNING v.id, v.fencing_token, v.remote_voice_id, v.provider),
         e AS (
           INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
           SELECT id, 'reclaiming', 'idle_reclaim', 'ready', 'reclaiming', '{"mode":"legacy"}'::jsonb FROM u)
         SELECT u.*, pg_notify('voice_status', id::text || ':reclaiming') FROM u`,
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
