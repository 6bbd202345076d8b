import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config';
import {
  budgetSettings,
  cloneAllowance,
  mayClone,
  type CloneBudgetSettings,
} from '../policy/clone-budget';
import {
  accountFromRow,
  budgetState,
  type AccountRow,
} from '../providers/provider-accounts.repository';
import type { Voice } from './voice';

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

/** The options of `queuePosition` under this configuration. */
export function queueInfoOptions(config: AppConfig): QueueInfoOptions {
  return {
    budget: budgetSettings(config),
    allocationLeaseSeconds: config.ALLOCATION_LEASE_SECONDS,
    positionMax: config.QUEUE_POSITION_MAX,
  };
}

/** Where a waiting voice stands in its provider's queue, and why it waits. */
@Injectable()
export class QueuePositionRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

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
}
