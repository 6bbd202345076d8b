import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import { cloneAllowance, mayClone, type CloneBudgetSettings } from '../policy/clone-budget';
import { SESSION_GAP_MS } from '../policy/voice-usage';
import {
  accountFromRow,
  budgetState,
  type AccountRow,
} from '../providers/provider-accounts.repository';
import { voiceFromRow, type Voice, type VoiceRow } from './voice';
import {
  assertTransition,
  type VoiceEventReason,
  type VoiceEventType,
  type VoiceStatus,
} from './voice-status';
import { VoiceTransitionHooks, type VoiceTransition } from './voice-transition.hooks';

/** Columns a transition may set, by domain name; values are parameters unless given as SQL. */
const SETTABLE = {
  attempts: 'attempts',
  remoteTries: 'remote_tries',
  fairTag: 'fair_tag',
  queuedAt: 'queued_at',
  allocationLeaseExpiresAt: 'allocation_lease_expires_at',
  leaseExpiresAt: 'lease_expires_at',
  lastUsedAt: 'last_used_at',
  readyAt: 'ready_at',
  useCount: 'use_count',
  sessionCount: 'session_count',
  firstUsedAt: 'first_used_at',
  remoteVoiceId: 'remote_voice_id',
  remoteCleanupPending: 'remote_cleanup_pending',
  sampleRemovalDueAt: 'sample_removal_due_at',
  sampleFormat: 'sample_format',
  sampleDurationMs: 'sample_duration_ms',
  sampleRate: 'sample_rate',
  sampleChannels: 'sample_channels',
  failureCode: 'failure_code',
  failureMessage: 'failure_message',
} as const;
type Settable = keyof typeof SETTABLE;

/** A raw SQL expression for a SET clause, e.g. `sql('now()')`. Only ever built from literals. */
export class Sql {
  constructor(readonly text: string) {}
}
export const sql = (text: string): Sql => new Sql(text);
/**
 * The use history an activation at `at` (SQL) adds, as `recordUse` in src/policy/voice-usage.ts
 * computes it: one more use, a new session after a gap of SESSION_GAP_MS (or at the first use).
 * In SQL so the activation's own row update keeps it, without reading the row first; the
 * arithmetic is checked against recordUse in test/slots.int-spec.ts.
 */
export function usageSet(at: string): Record<'useCount' | 'sessionCount' | 'firstUsedAt', Sql> {
  const gap = `interval '${Math.trunc(SESSION_GAP_MS / 1000)} seconds'`;
  return {
    useCount: new Sql('v.use_count + 1'),
    sessionCount: new Sql(
      `v.session_count + CASE WHEN v.session_count = 0 OR v.last_used_at IS NULL OR ${at} - v.last_used_at >= ${gap} THEN 1 ELSE 0 END`,
    ),
    firstUsedAt: new Sql(`COALESCE(v.first_used_at, ${at})`),
  };
}

/** `now() + n seconds` as SQL; n is a number, so nothing from outside reaches the text. */
export const secondsFromNow = (seconds: number): Sql =>
  new Sql(`now() + interval '${Math.trunc(seconds)} seconds'`);

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

export interface NewVoice {
  id: string;
  userId: string;
  name: string;
  provider: ProviderName;
  language: string | null;
  sampleKey: string;
  sampleContentType: string;
  sampleFilename: string;
  sampleSizeBytes: number;
  sampleSha256: string;
  traceContext?: Record<string, string>;
}

export interface VoiceListQuery {
  userId?: string;
  status?: VoiceStatus;
  provider?: ProviderName;
  limit: number;
  /** Keyset cursor: the last item's (createdAt, id). */
  after?: { createdAt: Date; id: string };
}

export type WaitReason = 'slot' | 'clone_budget' | 'breaker' | 'retry';

export interface QueueInfo {
  position: number;
  /** More voices are ahead than were counted (QUEUE_POSITION_MAX): `position` is a lower bound. */
  positionAtLeast: boolean;
  estimatedReadyAt: Date | null;
  /** Why the voice is not being cloned now. */
  waitReason: WaitReason;
}

export interface QueueInfoOptions {
  budget: CloneBudgetSettings;
  /** An allocation whose lease reaches past a fresh one is waiting for its next try. */
  allocationLeaseSeconds: number;
  /** Voices ahead counted at most; the count walks the claim index no further. */
  positionMax: number;
}

/**
 * Voices queued ahead of one ($2..$4) for a provider ($1), counted up to $5 + 1 rows: a walk of the
 * claim index (voices_claim_idx, the claim's own order) that stops there, whatever the queue's
 * depth. Exported for the test that checks its plan.
 */
export const QUEUED_AHEAD_SQL = `SELECT count(*)::int AS ahead FROM (
    SELECT 1 FROM voices
     WHERE provider = $1 AND status = 'queued'
       AND (fair_tag, queued_at, id) < ($2::bigint, $3::timestamptz, $4::uuid)
     ORDER BY fair_tag, queued_at, id
     LIMIT $5::int + 1) ahead`;

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

/** All SQL about voices and their events. Services never build queries. */
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

  async insertPending(v: NewVoice, em?: EntityManager): Promise<Voice> {
    const rows: VoiceRow[] = await this.q(em).query(
      `WITH v AS (
         INSERT INTO voices (id, user_id, name, provider, language, status, sample_key,
           sample_content_type, sample_filename, sample_size_bytes, sample_sha256, trace_context)
         VALUES ($1,$2,$3,$4,$5,'pending',$6,$7,$8,$9,$10,$11) RETURNING *),
       e AS (INSERT INTO voice_events (voice_id, type, reason, to_status)
             SELECT id, 'uploaded', 'upload', 'pending' FROM v)
       SELECT * FROM v`,
      [
        v.id,
        v.userId,
        v.name,
        v.provider,
        v.language,
        v.sampleKey,
        v.sampleContentType,
        v.sampleFilename,
        v.sampleSizeBytes,
        v.sampleSha256,
        v.traceContext ? JSON.stringify(v.traceContext) : null,
      ],
    );
    return voiceFromRow(rows[0]);
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
      if (admit) admit(await this.lockUserAndCountWaiting(spec.userId, em));
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

  /**
   * A waiting voice's place in its provider's claim order (1 = next), an estimate of when it will
   * be claimed (from the provider's moving average of time between claims), and why it is not
   * being cloned now. While the clone budget is the reason, the estimate is never before the
   * budget's reset.
   */
  async queuePosition(voice: Voice, opts: QueueInfoOptions): Promise<QueueInfo | null> {
    const queued = voice.status === 'queued' && voice.fairTag !== null && voice.queuedAt !== null;
    if (!queued && voice.status !== 'allocating') return null;
    const rows: (AccountRow & {
      ahead: number | null;
      interval_ms: number | null;
      breaker: string;
      retry_wait: boolean | null;
    })[] = await this.ds.query(
      `SELECT CASE WHEN $6 THEN (${QUEUED_AHEAD_SQL}) END AS ahead,
              p.claim_interval_ms AS interval_ms, p.breaker_state AS breaker,
              (SELECT allocation_lease_expires_at > now() + make_interval(secs => $7 + 1)
                 FROM voices WHERE id = $4) AS retry_wait,
              a.*
         FROM providers p JOIN provider_accounts a ON a.provider = p.name AND a.account = 'default'
        WHERE p.name = $1`,
      [
        voice.provider,
        voice.fairTag ?? '0',
        voice.queuedAt ?? new Date(0),
        voice.id,
        opts.positionMax,
        queued,
        opts.allocationLeaseSeconds,
      ],
    );
    const row = rows[0];
    if (!row) return null;
    if (!queued) {
      const waitReason: WaitReason =
        row.breaker !== 'closed' ? 'breaker' : row.retry_wait ? 'retry' : 'slot';
      return { position: 0, positionAtLeast: false, estimatedReadyAt: null, waitReason };
    }
    const counted = row.ahead ?? 0;
    const positionAtLeast = counted > opts.positionMax;
    const position = Math.min(counted, opts.positionMax) + 1;
    const interval = row.interval_ms;
    let estimatedReadyAt = interval === null ? null : new Date(Date.now() + position * interval);
    let waitReason: WaitReason = row.breaker === 'open' ? 'breaker' : 'slot';
    const allowance = cloneAllowance(budgetState(accountFromRow(row)), opts.budget, Date.now());
    if (waitReason === 'slot' && !mayClone(allowance, voice.readyAt !== null)) {
      waitReason = 'clone_budget';
      const notBefore = allowance.resetsAt;
      if (
        notBefore !== null &&
        (estimatedReadyAt === null || estimatedReadyAt.getTime() < notBefore)
      )
        estimatedReadyAt = new Date(notBefore);
    }
    return { position, positionAtLeast, estimatedReadyAt, waitReason };
  }

  /** Voices of a user waiting for a slot or for their metadata. */
  async pendingCount(userId: string): Promise<number> {
    const rows: { n: number }[] = await this.ds.query(
      `SELECT count(*)::int AS n FROM voices
        WHERE user_id = $1 AND status IN ('pending','queued','allocating')`,
      [userId],
    );
    return rows[0].n;
  }

  /** Pending voices whose metadata job may have been lost (Redis outage between commit and add). */
  async stalePending(olderThanSeconds: number, limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2`,
      [olderThanSeconds, limit],
    );
    return rows.map((r) => r.id);
  }

  /** Voices that left the holding states but may still have a remote voice to delete. */
  async cleanupPending(limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE remote_cleanup_pending AND status NOT IN ('allocating','ready','reclaiming')
        ORDER BY updated_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.id);
  }

  /** Marks the remote side of a voice as gone; the slot it occupied becomes free. */
  async clearRemote(id: string, expectedRemoteId: string | null): Promise<boolean> {
    const rows: { id: string }[] = await this.ds.query(
      `WITH u AS (UPDATE voices SET remote_cleanup_pending = false, remote_voice_id = NULL, updated_at = now()
        WHERE id = $1 AND remote_cleanup_pending AND remote_voice_id IS NOT DISTINCT FROM $2
          AND status NOT IN ('allocating','ready','reclaiming')
        RETURNING id)
       SELECT * FROM u`,
      [id, expectedRemoteId],
    );
    return rows.length > 0;
  }

  /** Deleted voices whose sample removal is due: never done, or its last try failed long enough ago. */
  async sampleRemovalsDue(limit: number): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM voices WHERE sample_removal_due_at <= now()
        ORDER BY sample_removal_due_at LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.id);
  }

  /** Storage confirmed the sample gone: nothing is left to re-drive. */
  async sampleRemoved(id: string): Promise<void> {
    await this.ds.query(
      `UPDATE voices SET sample_removal_due_at = NULL, sample_removal_attempts = 0
        WHERE id = $1 AND sample_removal_due_at IS NOT NULL`,
      [id],
    );
  }

  /**
   * A removal failed: the next try waits `baseSeconds` doubled per failure so far, at most
   * `maxSeconds`. Returns the failures counted so far and the wait, or null if nothing is pending.
   */
  async sampleRemovalFailed(
    id: string,
    baseSeconds: number,
    maxSeconds: number,
  ): Promise<{ attempts: number; retryInSeconds: number } | null> {
    const rows: { attempts: number; wait: number }[] = await this.ds.query(
      `WITH w AS (SELECT id, least($2 * power(2, least(sample_removal_attempts, 30)), $3) AS wait
                    FROM voices WHERE id = $1 AND sample_removal_due_at IS NOT NULL)
       UPDATE voices v SET sample_removal_attempts = v.sample_removal_attempts + 1,
              sample_removal_due_at = now() + make_interval(secs => w.wait)
         FROM w WHERE v.id = w.id
       RETURNING v.sample_removal_attempts AS attempts, w.wait::float8 AS wait`,
      [id, baseSeconds, maxSeconds],
    );
    return rows[0] ? { attempts: rows[0].attempts, retryInSeconds: rows[0].wait } : null;
  }

  /** Of these voice ids, the sample keys their rows (in any state) name. */
  async sampleKeysOf(ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const rows: { sample_key: string }[] = await this.ds.query(
      `SELECT sample_key FROM voices WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Set(rows.map((r) => r.sample_key));
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
   * Milliseconds until the next lease ends among voices that hold a slot on a job's behalf, by
   * Postgres's clock: an allocation's lease, or for a reclaim (which has no lease column) the time
   * it started plus `reclaimLeaseSeconds`. Leases that ended already are left out: the sweep that
   * just ran handled them (or re-enqueued their job), so they must not make it spin. Null when
   * none ends later. Reads only those voices (a few per slot), through the partial index of
   * holding voices.
   */
  async nextLeaseEndInMs(reclaimLeaseSeconds: number): Promise<number | null> {
    const [row]: { ms: number | null }[] = await this.ds.query(
      `SELECT (EXTRACT(EPOCH FROM min(ends) - now()) * 1000)::float8 AS ms
         FROM (SELECT CASE WHEN status = 'allocating' THEN allocation_lease_expires_at
                           ELSE updated_at + make_interval(secs => $1) END AS ends
                 FROM voices WHERE status IN ('allocating', 'reclaiming')) l
        WHERE ends > now()`,
      [reclaimLeaseSeconds],
    );
    return row?.ms ?? null;
  }

  /** Batched last-use times; never moves a time backwards. */
  async recordLastUse(ids: string[], at: Date[]): Promise<void> {
    await this.ds.query(
      `UPDATE voices v SET last_used_at = GREATEST(v.last_used_at, x.at),
              ${Object.entries(usageSet('x.at'))
                .map(([k, v]) => `${SETTABLE[k as Settable]} = ${v.text}`)
                .join(', ')}
         FROM unnest($1::uuid[], $2::timestamptz[]) AS x(id, at) WHERE v.id = x.id`,
      [ids, at],
    );
  }

  /**
   * Serialises a user's admissions (uploads, re-activations) and counts their waiting voices, so
   * concurrent requests cannot pass USER_MAX_PENDING together. Call inside a transaction.
   */
  async lockUserAndCountWaiting(userId: string, em: EntityManager): Promise<number> {
    await em.query(`SELECT pg_advisory_xact_lock(hashtext('user-admission'), hashtext($1))`, [
      userId,
    ]);
    const rows: { n: number }[] = await em.query(
      `SELECT count(*)::int AS n FROM voices
        WHERE user_id = $1 AND status IN ('pending','queued','allocating')`,
      [userId],
    );
    return rows[0].n;
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
