import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { VoiceStatus } from '../voice/voice-status';

/** Statuses counted at scrape; each is served by a partial index, so a scrape stays cheap. */
export const COUNTED_STATUSES = [
  'pending',
  'queued',
  'allocating',
  'ready',
  'reclaiming',
] as const satisfies readonly VoiceStatus[];
export type CountedStatus = (typeof COUNTED_STATUSES)[number];

export interface StatusCount {
  provider: ProviderName;
  status: CountedStatus;
  voices: number;
}

export interface InFlightAges {
  provider: ProviderName;
  /** Allocations whose lease ran out: the sweeper should resolve them within a tick or two. */
  expiredAllocations: number;
  /** Seconds since the oldest current allocation claimed its slot. */
  oldestAllocatingSeconds: number | null;
  /** Seconds since the oldest voice still `reclaiming` entered that state. */
  oldestReclaimingSeconds: number | null;
}

/**
 * The SQL behind the scrape-time gauges: shared state read from Postgres, so every replica
 * reports the same numbers and nothing needs summing across replicas.
 */
@Injectable()
export class MetricsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async statusCounts(): Promise<StatusCount[]> {
    const rows: { provider: ProviderName; status: CountedStatus; n: number }[] =
      await this.ds.query(
        `SELECT provider, status, count(*)::int AS n FROM voices
          WHERE status = ANY($1::voice_status[]) GROUP BY provider, status`,
        [COUNTED_STATUSES],
      );
    return rows.map((r) => ({ provider: r.provider, status: r.status, voices: r.n }));
  }

  async inFlightAges(): Promise<InFlightAges[]> {
    const rows: {
      provider: ProviderName;
      expired: number;
      oldest_allocating: number | null;
      oldest_reclaiming: number | null;
    }[] = await this.ds.query(
      `SELECT provider,
              count(*) FILTER (WHERE status = 'allocating' AND allocation_lease_expires_at < now())::int AS expired,
              EXTRACT(EPOCH FROM now() - min(claimed_at) FILTER (WHERE status = 'allocating'))::float8 AS oldest_allocating,
              EXTRACT(EPOCH FROM now() - min(updated_at) FILTER (WHERE status = 'reclaiming'))::float8 AS oldest_reclaiming
         FROM voices WHERE status IN ('allocating','reclaiming') GROUP BY provider`,
    );
    return rows.map((r) => ({
      provider: r.provider,
      expiredAllocations: r.expired,
      oldestAllocatingSeconds: r.oldest_allocating,
      oldestReclaimingSeconds: r.oldest_reclaiming,
    }));
  }
}
