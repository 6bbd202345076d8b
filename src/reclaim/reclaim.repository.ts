import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';

export interface Victim {
  voiceId: string;
  fencingToken: string;
  remoteVoiceId: string | null;
}

export interface VictimPolicy {
  minIdleSeconds: number;
  minResidencySeconds: number;
  /**
   * backlog: as many as the provider's queued voices need beyond free and already-reclaiming
   * slots; idle: every voice idle past minIdleSeconds (the optional cost saver).
   */
  mode: 'backlog' | 'idle';
  /** Upper bound per call. */
  max: number;
  /**
   * backlog mode: the clones the budget lets out now, never-cloned voices (`first`) and voices
   * cloned before (`reclone`); absent or Infinity = unlimited. Only queued voices that could be
   * cloned now justify taking a ready voice's slot.
   */
  clones?: { first: number; reclone: number };
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
   * Marks victims `reclaiming` under the provider's row lock, so concurrent reclaimers and
   * claimers see one consistent count and never reclaim more than the backlog needs. Never a voice
   * under an activation lease, never one younger than the minimum residency.
   */
  async pickVictims(provider: ProviderName, policy: VictimPolicy): Promise<Victim[]> {
    // One statement, one round trip. The provider row is locked first; the backlog is counted
    // through reclaim_need, a VOLATILE function, so with a snapshot taken after that lock (see its
    // migration). A ready voice another reclaimer took meanwhile fails the status recheck of
    // FOR UPDATE and is skipped.
    const rows: { id: string; fencing_token: string; remote_voice_id: string | null }[] =
      await this.ds.query(
        `WITH p AS MATERIALIZED (SELECT name FROM providers WHERE name = $1 FOR UPDATE),
         want AS MATERIALIZED (
           SELECT CASE WHEN $5::text = 'idle' THEN $4::int ELSE reclaim_need(name, $4, $6, $7) END AS n FROM p),
         -- With the row's address, as in the claim: the update needs no index descent.
         picked AS (
           SELECT id, ctid AS tid FROM voices
            WHERE provider = $1 AND status = 'ready'
              AND (lease_expires_at IS NULL OR lease_expires_at < now())
              AND COALESCE(last_used_at, ready_at) < now() - make_interval(secs => $2)
              AND ready_at < now() - make_interval(secs => $3)
            ORDER BY last_used_at NULLS FIRST, ready_at
            LIMIT GREATEST(0, COALESCE((SELECT n FROM want), 0)) FOR UPDATE SKIP LOCKED),
         u AS (
           UPDATE voices v SET status = 'reclaiming', fencing_token = v.fencing_token + 1, updated_at = now()
             FROM picked WHERE v.ctid = picked.tid AND v.id = picked.id AND v.status = 'ready'
           RETURNING v.id, v.fencing_token, v.remote_voice_id, v.last_used_at),
         e AS (
           INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
           SELECT id, 'reclaiming', 'idle_reclaim', 'ready', 'reclaiming',
                  jsonb_build_object('mode', $5::text, 'lastUsedAt', last_used_at) FROM u)
         -- Announced like every other status change: replicas drop the voice from their
         -- ready-voice caches (src/voice/ready-voice.cache.ts).
         SELECT id, fencing_token, remote_voice_id, pg_notify('voice_status', id::text || ':reclaiming') FROM u`,
        [
          provider,
          policy.minIdleSeconds,
          policy.minResidencySeconds,
          policy.max,
          policy.mode,
          limitOrNull(policy.clones?.first),
          limitOrNull(policy.clones?.reclone),
        ],
      );
    return rows.map((r) => ({
      voiceId: r.id,
      fencingToken: String(r.fencing_token),
      remoteVoiceId: r.remote_voice_id,
    }));
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

  /**
   * Milliseconds until the provider's next ready voice may become a victim under `policy` (its
   * activation lease over, idle and resident long enough), by Postgres's clock; null when none is
   * ready. Ready voices number at most the slot limit, so this reads few rows.
   */
  async nextVictimInMs(provider: ProviderName, policy: VictimPolicy): Promise<number | null> {
    const [row]: { ms: number | null }[] = await this.ds.query(
      `SELECT (EXTRACT(EPOCH FROM min(GREATEST(
                 COALESCE(lease_expires_at, '-infinity'),
                 COALESCE(last_used_at, ready_at) + make_interval(secs => $2),
                 ready_at + make_interval(secs => $3))) - now()) * 1000)::float8 AS ms
         FROM voices WHERE provider = $1 AND status = 'ready'`,
      [provider, policy.minIdleSeconds, policy.minResidencySeconds],
    );
    return row?.ms ?? null;
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
    return rows.map((r) => ({
      voiceId: r.id,
      fencingToken: String(r.fencing_token),
      remoteVoiceId: r.remote_voice_id,
    }));
  }
}
