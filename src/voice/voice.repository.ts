import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import { voiceFromRow, type Voice, type VoiceRow } from './voice';
import { lockUserAndCountWaiting } from './voice-admission.repository';
import {
  assertTransition,
  type VoiceEventReason,
  type VoiceEventType,
  type VoiceStatus,
} from './voice-status';
import { VoiceTransitionHooks, type VoiceTransition } from './voice-transition.hooks';
import { SETTABLE, Sql, sql, type Settable } from './voice-sql';

export { secondsFromNow, Sql, sql, usageSet } from './voice-sql';

export interface TransitionSpec {
  id: string;
  from: readonly VoiceStatus[];
  to: VoiceStatus;
  /** Compare-and-set on the fencing token too: a stale holder changes nothing. */
  token?: string;
  /** Take the voice away from any current holder (claims, take-overs by the sweeper). */
  bumpToken?: boolean;
  /** Only for a voice of this user. */
  userId?: string;
  set?: Partial<Record<Settable, unknown>>;
  event: { type: VoiceEventType; reason: VoiceEventReason; metadata?: Record<string, unknown> };
}

export interface VoiceListQuery {
  userId?: string;
  status?: VoiceStatus;
  provider?: ProviderName;
  limit: number;
  /** Keyset cursor: the last item's (createdAt, id). */
  after?: { createdAt: Date; id: string };
}

export interface VoiceEventRow {
  type: VoiceEventType;
  reason: VoiceEventReason;
  fromStatus: VoiceStatus | null;
  toStatus: VoiceStatus;
  metadata: Record<string, unknown>;
  createdAt: Date;
}

/** What observers of transitions (metrics) read of a committed transition. */
export type TransitionRecord = Pick<VoiceTransition, 'voice' | 'from' | 'event'>;

/**
 * A voice's row and its events: the reads, and every status transition (checked against the
 * transition table, compare-and-set, its event row in the same statement, its hooks after the
 * commit). The other writes of voices live beside it in src/voice, by job (admission, usage,
 * clean-up); outside src/voice only slots' claim and lease statements write the table.
 */
@Injectable()
export class VoiceRepository {
  /** Transitions made inside a transaction of ours, published once it commits. */
  private readonly uncommitted = new WeakMap<EntityManager, VoiceTransition[]>();

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    // Suites that build the repository by hand get a registry of their own.
    private readonly hooks: VoiceTransitionHooks = new VoiceTransitionHooks(),
  ) {}

  /** Observers of every committed transition (metrics, caches): see VoiceTransitionHooks. */
  onTransition(listener: (t: TransitionRecord) => void): void {
    this.hooks.subscribe('onTransition', listener);
  }

  private q(em?: EntityManager) {
    return em ?? this.ds.manager;
  }

  async findById(id: string, userId?: string, em?: EntityManager): Promise<Voice | null> {
    const rows: VoiceRow[] = await this.q(em).query(
      `SELECT * FROM voices WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)`,
      [id, userId ?? null],
    );
    return rows.length ? voiceFromRow(rows[0]) : null;
  }

  async list(query: VoiceListQuery): Promise<Voice[]> {
    const rows: VoiceRow[] = await this.ds.query(
      `SELECT * FROM voices
        WHERE ($1::text IS NULL OR user_id = $1)
          AND ($2::voice_status IS NULL OR status = $2)
          AND ($3::provider_name IS NULL OR provider = $3)
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $6`,
      [
        query.userId ?? null,
        query.status ?? null,
        query.provider ?? null,
        query.after?.createdAt ?? null,
        query.after?.id ?? null,
        query.limit,
      ],
    );
    return rows.map(voiceFromRow);
  }

  async events(voiceId: string): Promise<VoiceEventRow[]> {
    const rows: {
      type: VoiceEventType;
      reason: VoiceEventReason;
      from_status: VoiceStatus | null;
      to_status: VoiceStatus;
      metadata: Record<string, unknown>;
      created_at: Date;
    }[] = await this.ds.query(
      `SELECT type, reason, from_status, to_status, metadata, created_at
         FROM voice_events WHERE voice_id = $1 ORDER BY created_at, id`,
      [voiceId],
    );
    return rows.map((r) => ({
      type: r.type,
      reason: r.reason,
      fromStatus: r.from_status,
      toStatus: r.to_status,
      metadata: r.metadata,
      createdAt: r.created_at,
    }));
  }

  /**
   * Compare-and-set transition with its event row, in one statement (so in one transaction).
   * Returns the updated voice, or null when the voice was not in an expected state or its token
   * moved on: the caller lost the race and must not act.
   */
  async transition(spec: TransitionSpec, em?: EntityManager): Promise<Voice | null> {
    assertTransition(spec.from, spec.to);
    const params: unknown[] = [spec.id, spec.from, spec.to];
    const sets = ['status = $3', 'updated_at = now()'];
    if (spec.bumpToken) sets.push('fencing_token = v.fencing_token + 1');
    for (const [key, value] of Object.entries(spec.set ?? {})) {
      const column = SETTABLE[key as Settable];
      if (value instanceof Sql) {
        sets.push(`${column} = ${value.text}`);
      } else {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      }
    }
    const conditions = ['v.id = $1', 'v.status = ANY($2::voice_status[])'];
    if (spec.token !== undefined) {
      params.push(spec.token);
      conditions.push(`v.fencing_token = $${params.length}`);
    }
    if (spec.userId !== undefined) {
      params.push(spec.userId);
      conditions.push(`v.user_id = $${params.length}`);
    }
    params.push(spec.event.type, spec.event.reason, JSON.stringify(spec.event.metadata ?? {}));
    const n = params.length;
    const rows: (VoiceRow & { old_status: VoiceStatus; notified: unknown })[] = await this.q(
      em,
    ).query(
      `WITH o AS (SELECT id, status AS old_status FROM voices WHERE id = $1 FOR UPDATE),
       u AS (UPDATE voices v SET ${sets.join(', ')} FROM o
              WHERE ${conditions.join(' AND ')} AND v.id = o.id
              RETURNING v.*, o.old_status),
       e AS (INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
             SELECT id, $${n - 2}, $${n - 1}, old_status, status, $${n}::jsonb FROM u)
       SELECT u.*, pg_notify('voice_status', u.id::text || ':' || u.status::text) AS notified FROM u`,
      params,
    );
    if (!rows.length) return null;
    const voice = voiceFromRow(rows[0]);
    const record: VoiceTransition = {
      voice,
      provider: voice.provider,
      from: rows[0].old_status,
      to: voice.status,
      event: spec.event,
    };
    const deferred = em && this.uncommitted.get(em);
    if (deferred) deferred.push(record);
    else if (em?.queryRunner?.isTransactionActive)
      // Its commit is out of our sight: the hooks would fire before it, or after a rollback.
      throw new Error(
        'a voice transition inside a transaction must run in VoiceRepository.transaction',
      );
    else await this.hooks.publish(record);
    return voice;
  }

  /**
   * Queues a voice at its fair place: the start tag is computed and the transition applied in one
   * transaction. `admit`, when given, sees the user's waiting count under the user's lock and may
   * throw to refuse.
   */
  async queueFairly(
    spec: Omit<TransitionSpec, 'to' | 'userId'> & { provider: ProviderName; userId: string },
    admit?: (waiting: number) => void,
  ): Promise<Voice | null> {
    const { provider, ...transition } = spec;
    return this.transaction(async (em) => {
      if (admit) admit(await lockUserAndCountWaiting(spec.userId, em));
      const fairTag = await this.nextFairTag(provider, spec.userId, em);
      return this.transition(
        { ...transition, to: 'queued', set: { ...spec.set, fairTag, queuedAt: sql('now()') } },
        em,
      );
    });
  }

  /**
   * The start tag that places a newly queued voice fairly: one past the later of the provider's
   * virtual time and the user's own last queued tag. Serialised per (provider, user) by an
   * advisory lock so two uploads of one user do not share a tag.
   */
  async nextFairTag(provider: ProviderName, userId: string, em: EntityManager): Promise<string> {
    await em.query(`SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, [provider, userId]);
    const rows: { tag: string }[] = await em.query(
      `SELECT GREATEST(
          (SELECT virtual_time FROM providers WHERE name = $1),
          -- Only queued voices: a claimed voice's tag is never above the virtual time.
          COALESCE((SELECT max(fair_tag) FROM voices
                     WHERE provider = $1 AND user_id = $2 AND status = 'queued'), 0)
        ) + 1 AS tag`,
      [provider, userId],
    );
    return String(rows[0].tag);
  }

  /** An event about a voice that does not change its state (e.g. an orphan of it was deleted). */
  async recordEvent(
    voiceId: string,
    type: VoiceEventType,
    reason: VoiceEventReason,
    metadata: Record<string, unknown>,
  ): Promise<void> {
    await this.ds.query(
      `INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
       SELECT id, $2, $3, status, status, $4::jsonb FROM voices WHERE id = $1`,
      [voiceId, type, reason, JSON.stringify(metadata)],
    );
  }

  /** What reconciliation compares with the provider's list: our voices of one provider by id. */
  async remoteViewOf(
    provider: ProviderName,
    ids: string[],
  ): Promise<Map<string, { status: VoiceStatus; remoteVoiceId: string | null }>> {
    const rows: { id: string; status: VoiceStatus; remote_voice_id: string | null }[] =
      await this.ds.query(
        `SELECT id, status, remote_voice_id FROM voices WHERE provider = $1 AND id = ANY($2::uuid[])`,
        [provider, ids],
      );
    return new Map(rows.map((r) => [r.id, { status: r.status, remoteVoiceId: r.remote_voice_id }]));
  }

  /** Ready voices of a provider that became ready before `before`, with their remote ids. */
  async readyVoices(
    provider: ProviderName,
    before: Date,
  ): Promise<{ id: string; remoteVoiceId: string; leased: boolean; fencingToken: string }[]> {
    const rows: { id: string; remote_voice_id: string; leased: boolean; fencing_token: string }[] =
      await this.ds.query(
        `SELECT id, remote_voice_id, fencing_token, COALESCE(lease_expires_at > now(), false) AS leased
           FROM voices WHERE provider = $1 AND status = 'ready' AND ready_at < $2
            AND remote_voice_id IS NOT NULL`,
        [provider, before],
      );
    return rows.map((r) => ({
      id: r.id,
      remoteVoiceId: r.remote_voice_id,
      leased: r.leased,
      fencingToken: String(r.fencing_token),
    }));
  }

  /**
   * SCHEDULER_STRATEGY=legacy only: the replaced design's "requeue with jitter" pushes a queued
   * voice back by a random delay.
   */
  async pushBack(id: string, jitterMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE voices SET queued_at = now() + make_interval(secs => $2 / 1000.0) WHERE id = $1 AND status = 'queued'`,
      [id, jitterMs],
    );
  }

  /** Runs `fn` in one transaction; the transitions it made are published after the commit. */
  async transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    const made: VoiceTransition[] = [];
    const result = await this.ds.transaction((em) => {
      this.uncommitted.set(em, made);
      return fn(em);
    });
    for (const record of made) await this.hooks.publish(record);
    return result;
  }
}
