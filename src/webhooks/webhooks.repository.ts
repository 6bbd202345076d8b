import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';

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
   * every worker while the others wait.
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
      `WITH busy AS (
         SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
          WHERE status = 'pending' AND lease_until > now() GROUP BY endpoint_id),
       ranked AS (
         SELECT d.id, d.endpoint_id,
                row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS k
           FROM webhook_deliveries d
          WHERE d.status = 'pending' AND d.next_attempt_at <= now()
            AND (d.lease_until IS NULL OR d.lease_until <= now())),
       pick AS (
         SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id
           LEFT JOIN busy b ON b.endpoint_id = r.endpoint_id
          WHERE r.k + COALESCE(b.n, 0) <= $2
          ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED),
       u AS (
         UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $3)
           FROM pick, webhook_endpoints e
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

  /** Fixes the body at the first attempt, unless another attempt fixed it first. */
  async fixPayload(id: string, payload: string): Promise<string> {
    const [r] = await this.ds.query<{ payload: string }[]>(
      `WITH u AS (UPDATE webhook_deliveries SET payload = COALESCE(payload, $2) WHERE id = $1 RETURNING payload)
       SELECT payload FROM u`,
      [id, payload],
    );
    return r.payload;
  }

  /**
   * Records an attempt: delivered, or due again after `retryInSeconds`, or failed for good when
   * that is null. Only while still pending: a delivery another worker already delivered (one
   * frozen past its lease, then woken) stays delivered.
   */
  async recordAttempt(
    id: string,
    attempt: Attempt,
    outcome: { delivered: boolean; retryInSeconds: number | null },
  ): Promise<void> {
    await this.ds.query(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL,
              history = history || $2::jsonb,
              status = CASE WHEN $3 THEN 'delivered' WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END::webhook_delivery_status,
              delivered_at = CASE WHEN $3 THEN now() END,
              next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at ELSE now() + make_interval(secs => $4) END
        WHERE id = $1 AND status = 'pending'`,
      [id, JSON.stringify([attempt]), outcome.delivered, outcome.retryInSeconds],
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
