import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import { voiceFromRow, type Voice, type VoiceRow } from '../voice/voice';

export const WEBHOOK_EVENTS = [
  'voice.ready',
  'voice.failed',
  'voice.reclaimed',
  'voice.deleted',
  'voice.remote_changed',
  'provider.breaker_opened',
  'provider.breaker_closed',
  'provider.clone_budget_low',
  'provider.clone_budget_exhausted',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: WebhookEvent[];
  createdAt: Date;
}

export interface Attempt {
  at: string;
  status: number | null;
  error: string | null;
  durationMs: number;
}

export interface Delivery {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: WebhookEvent;
  voiceId: string | null;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: Date;
  createdAt: Date;
  deliveredAt: Date | null;
  history: Attempt[];
}

/** A delivery a worker holds now, with what it needs to send it. */
export interface ClaimedDelivery extends Delivery {
  /** The provider of a provider.* event (data is the provider as GET /v1/providers shows it). */
  provider: ProviderName | null;
  url: string;
  secret: string;
  payload: string | null;
  sourceCreatedAt: Date | null;
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: WebhookEvent;
  voice_id: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  created_at: Date;
  delivered_at: Date | null;
  history: Attempt[];
}

const toDelivery = (r: DeliveryRow): Delivery => ({
  id: r.id,
  endpointId: r.endpoint_id,
  eventId: r.event_id,
  eventType: r.event_type,
  voiceId: r.voice_id,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  createdAt: r.created_at,
  deliveredAt: r.delivered_at,
  history: r.history,
});

/** Endpoints and their deliveries (the outbox's rows are written by the voice_events trigger). */
@Injectable()
export class WebhooksRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async createEndpoint(
    url: string,
    events: WebhookEvent[],
    secret: string,
  ): Promise<WebhookEndpoint> {
    const [r] = await this.ds.query<{ id: string; created_at: Date }[]>(
      `INSERT INTO webhook_endpoints (url, events, secret) VALUES ($1, $2, $3) RETURNING id, created_at`,
      [url, events, secret],
    );
    return { id: r.id, url, events, createdAt: r.created_at };
  }

  async listEndpoints(): Promise<WebhookEndpoint[]> {
    const rows = await this.ds.query<
      { id: string; url: string; events: WebhookEvent[]; created_at: Date }[]
    >(
      `SELECT id, url, events, created_at FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY created_at`,
    );
    return rows.map((r) => ({ id: r.id, url: r.url, events: r.events, createdAt: r.created_at }));
  }

  /** Stops new deliveries to the endpoint and drops its pending ones. */
  async deleteEndpoint(id: string): Promise<boolean> {
    const rows = await this.ds.query<{ id: string }[]>(
      `WITH e AS (UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id),
            d AS (UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL
                   WHERE endpoint_id IN (SELECT id FROM e) AND status = 'pending')
       SELECT id FROM e`,
      [id],
    );
    return rows.length > 0;
  }

  async endpointExists(id: string): Promise<boolean> {
    const rows = await this.ds.query<unknown[]>(
      `SELECT 1 FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`,
      [id],
    );
    return rows.length > 0;
  }

  async deliveries(
    endpointId: string,
    status: DeliveryStatus | undefined,
    limit: number,
  ): Promise<Delivery[]> {
    const rows = await this.ds.query<DeliveryRow[]>(
      `SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2::webhook_delivery_status IS NULL OR status = $2)
        ORDER BY created_at DESC, id LIMIT $3`,
      [endpointId, status ?? null, limit],
    );
    return rows.map(toDelivery);
  }

  /** An admin's retry: the delivery is due now with a fresh schedule (its id and body kept). */
  async retry(endpointId: string, deliveryId: string): Promise<Delivery | null> {
    const [row] = await this.ds.query<DeliveryRow[]>(
      `WITH u AS (
         UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL
           FROM webhook_endpoints e
          WHERE d.id = $2 AND d.endpoint_id = $1 AND e.id = d.endpoint_id AND e.deleted_at IS NULL
            AND d.status <> 'delivered'
         RETURNING d.*)
       SELECT * FROM u`,
      [endpointId, deliveryId],
    );
    return row ? toDelivery(row) : null;
  }

  /**
   * Takes up to `max` due deliveries under a lease, at most `perEndpoint` in flight per endpoint
   * (counted with the leases others hold), oldest due first, so one slow receiver cannot occupy
   * every worker while the others wait. The leases are counted among the endpoint's first
   * `perEndpoint + max` due deliveries: taken oldest first, the ones in flight are among them
   * (a lease further back, behind that many older deliveries due and not taken, is not counted,
   * and the endpoint may then have a few more in flight for a round). No index of leases: the
   * lease is a HOT update (WebhookLeaseHot1765600000000), one heap tuple and no index entries.
   * Each endpoint's candidates are read from its own index
   * range (WebhookClaim1765400002000), so a long backlog does not slow the claim. Committed
   * without waiting for the WAL flush (as recordAttempts): a lease lost to a crash of Postgres
   * only lets the delivery be taken again, sent once more under the same webhook-id.
   *
   * A parameterised statement, planned at each call for its own limits: a PL/pgSQL function
   * keeping one generic plan was tried and dropped (52 ms a claim once a backlog had formed,
   * against 2 ms planned each time).
   */
  async claimDue(
    max: number,
    perEndpoint: number,
    leaseSeconds: number,
  ): Promise<ClaimedDelivery[]> {
    const rows = await this.ds.query<
      (DeliveryRow & {
        provider: ProviderName | null;
        url: string;
        secret: string;
        payload: string | null;
        source_created_at: Date | null;
      })[]
    >(
      `WITH cand AS (
         SELECT c.id, c.next_attempt_at FROM webhook_endpoints e
          CROSS JOIN LATERAL (
            SELECT w.id, w.next_attempt_at FROM (
              SELECT x.*,
                     count(*) FILTER (WHERE x.leased) OVER () AS in_flight,
                     count(*) FILTER (WHERE NOT x.leased)
                       OVER (ORDER BY x.next_attempt_at, x.id ROWS UNBOUNDED PRECEDING) AS k
                FROM (SELECT d.id, d.next_attempt_at, COALESCE(d.lease_until > now(), false) AS leased
                        FROM webhook_deliveries d
                       WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                       ORDER BY d.next_attempt_at, d.id
                       LIMIT $2::int + $1::int) x) w
             WHERE NOT w.leased AND w.k <= $2 - w.in_flight) c
          WHERE e.deleted_at IS NULL),
       pick AS (
         SELECT d.id FROM webhook_deliveries d JOIN cand ON cand.id = d.id
          WHERE d.status = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= now())
          ORDER BY cand.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED),
       u AS (
         UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $3)
           FROM pick, webhook_endpoints e,
                (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
          WHERE d.id = pick.id AND e.id = d.endpoint_id
         RETURNING d.*, e.url, e.secret)
       -- A statement, not a bare UPDATE, so the driver answers rows (TypeORM wraps UPDATE results).
       SELECT u.*, COALESCE(
                (SELECT created_at FROM voice_events WHERE id = u.source_event_id),
                (SELECT created_at FROM provider_events WHERE id = u.provider_event_id)) AS source_created_at
         FROM u`,
      [max, perEndpoint, leaseSeconds],
    );
    return rows.map((r) => ({
      ...toDelivery(r),
      provider: r.provider,
      url: r.url,
      secret: r.secret,
      payload: r.payload,
      sourceCreatedAt: r.source_created_at,
    }));
  }

  /** The voices of a round's deliveries, in one read. */
  async voices(ids: string[]): Promise<Map<string, Voice>> {
    if (ids.length === 0) return new Map();
    const rows = await this.ds.query<VoiceRow[]>(
      `SELECT * FROM voices WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((r) => [r.id, voiceFromRow(r)]));
  }

  /**
   * Records attempts in one statement: each delivered, or due again after
   * `retryInSeconds`, or failed for good when that is null; a first attempt's record also keeps
   * the body it sent, which every later attempt sends again (a body already kept wins). Only while
   * still pending: a delivery another worker already delivered (one frozen past its lease, then
   * woken) stays delivered.
   *
   * Committed without waiting for the WAL flush: Postgres crashing may lose the last few
   * milliseconds of records, never corrupt them, and a lost record only leaves its lease to
   * expire, so the delivery is sent once more under the same webhook-id, which receivers
   * deduplicate (Standard Webhooks), with its body built again if none was kept.
   */
  async recordAttempts(
    attempts: {
      id: string;
      attempt: Attempt;
      delivered: boolean;
      retryInSeconds: number | null;
      /** The body sent, when no body was kept before this attempt. */
      payload: string | null;
    }[],
  ): Promise<void> {
    if (attempts.length === 0) return;
    await this.ds.query(
      `UPDATE webhook_deliveries d SET attempts = d.attempts + 1, lease_until = NULL,
              history = d.history || jsonb_build_array(a.attempt),
              payload = COALESCE(d.payload, a.payload),
              status = CASE WHEN a.delivered THEN 'delivered' WHEN a.retry IS NULL THEN 'failed'
                            ELSE 'pending' END::webhook_delivery_status,
              delivered_at = CASE WHEN a.delivered THEN now() END,
              next_attempt_at = CASE WHEN a.retry IS NULL THEN d.next_attempt_at
                                     ELSE now() + make_interval(secs => a.retry) END
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit,
              unnest($1::uuid[], $2::jsonb[], $3::bool[], $4::float8[], $5::text[])
              AS a(id, attempt, delivered, retry, payload)
        WHERE d.id = a.id AND d.status = 'pending'`,
      [
        attempts.map((a) => a.id),
        attempts.map((a) => JSON.stringify(a.attempt)),
        attempts.map((a) => a.delivered),
        attempts.map((a) => a.retryInSeconds),
        attempts.map((a) => a.payload),
      ],
    );
  }

  /**
   * The share of a clone budget at or below which provider.clone_budget_low is announced, for the
   * trigger that announces it (ProviderEvents1765400001000) to read from the row it watches.
   */
  async setBudgetLowRatio(ratio: number): Promise<void> {
    await this.ds.query(
      `UPDATE provider_accounts SET budget_low_ratio = $1 WHERE budget_low_ratio IS DISTINCT FROM $1`,
      [ratio],
    );
  }

  /** Pending deliveries per endpoint and the oldest one's age, for /metrics. */
  async backlog(): Promise<{ endpointId: string; pending: number; oldestSeconds: number }[]> {
    const rows = await this.ds.query<{ endpoint_id: string; pending: number; oldest: number }[]>(
      `SELECT endpoint_id, count(*)::int AS pending,
              EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
         FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id`,
    );
    return rows.map((r) => ({
      endpointId: r.endpoint_id,
      pending: r.pending,
      oldestSeconds: r.oldest,
    }));
  }
}
