import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { CloneBudgetState } from '../policy/clone-budget';
import type { CloneBudgetReading } from './voice-provider.port';

/** Every provider has one account today; the key exists so that several can follow. */
export const DEFAULT_ACCOUNT = 'default';

export interface AccountBudget {
  provider: ProviderName;
  account: string;
  configured: number | null;
  published: number | null;
  /** The provider's counter at its last read (or 0 at the start of a configured period). */
  used: number;
  /** Clones claimed ever; the claim compares it to detect a concurrent claim (see claim()). */
  clonesTotal: string;
  clonesAtRead: string;
  resetsAt: Date | null;
  resetSource: 'provider' | 'configured' | null;
  exhaustedUntil: Date | null;
  checkedAt: Date | null;
  spentNoted: boolean;
}

export interface AccountRow {
  provider: ProviderName;
  account: string;
  budget_configured: number | null;
  budget_published: number | null;
  budget_used: number;
  clones_total: string;
  clones_at_read: string;
  budget_resets_at: Date | null;
  budget_reset_source: 'provider' | 'configured' | null;
  budget_exhausted_until: Date | null;
  budget_checked_at: Date | null;
  budget_spent_noted: boolean;
}

export function accountFromRow(r: AccountRow): AccountBudget {
  return {
    provider: r.provider,
    account: r.account,
    configured: r.budget_configured,
    published: r.budget_published,
    used: r.budget_used,
    clonesTotal: String(r.clones_total),
    clonesAtRead: String(r.clones_at_read),
    resetsAt: r.budget_resets_at,
    resetSource: r.budget_reset_source,
    exhaustedUntil: r.budget_exhausted_until,
    checkedAt: r.budget_checked_at,
    spentNoted: r.budget_spent_noted,
  };
}

/** What the pure budget decision needs from an account row. */
export function budgetState(b: AccountBudget): CloneBudgetState {
  const sinceRead = Number(BigInt(b.clonesTotal) - BigInt(b.clonesAtRead));
  return {
    limit: b.configured ?? b.published,
    spent: b.used + Math.max(0, sinceRead),
    resetsAt: b.resetsAt?.getTime() ?? null,
    exhaustedUntil: b.exhaustedUntil?.getTime() ?? null,
  };
}

/** The voices allocating now, whose creates may still reach the provider after a read. */
const SETTLED_SQL = `clones_total - (SELECT count(*) FROM voices
                                      WHERE provider = $1 AND status = 'allocating')`;

/** SQL of provider accounts: their clone budgets. The claim counts clones in slots.repository. */
@Injectable()
export class ProviderAccountsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async budget(provider: ProviderName): Promise<AccountBudget> {
    const [row]: AccountRow[] = await this.ds.query(
      `SELECT * FROM provider_accounts WHERE provider = $1 AND account = $2`,
      [provider, DEFAULT_ACCOUNT],
    );
    return accountFromRow(row);
  }

  /**
   * Writes the configured budget. A configured budget on an account whose provider publishes no
   * reset time gets a period of its own, starting now.
   */
  async configure(
    provider: ProviderName,
    configured: number | null,
    periodSeconds: number,
  ): Promise<void> {
    await this.ds.query(
      `UPDATE provider_accounts SET budget_configured = $3::int,
              budget_reset_source = CASE WHEN budget_reset_source = 'provider' THEN 'provider'
                                         WHEN $3::int IS NULL THEN NULL ELSE 'configured' END,
              budget_resets_at = CASE
                WHEN budget_reset_source = 'provider' THEN budget_resets_at
                WHEN $3::int IS NULL THEN NULL
                ELSE COALESCE(budget_resets_at, now() + make_interval(secs => $4)) END,
              clones_at_read = CASE WHEN budget_reset_source IS NULL AND $3::int IS NOT NULL
                                    THEN ${SETTLED_SQL} ELSE clones_at_read END,
              updated_at = now()
        WHERE provider = $1 AND account = $2`,
      [provider, DEFAULT_ACCOUNT, configured, periodSeconds],
    );
  }

  /**
   * Records a reading of the provider's counter begun at `startedAt`, when `settled` clones had
   * surely reached the provider (see SETTLED_SQL). An older reading that finishes after a newer
   * one changes nothing. Returns the reset time it replaced, so a new period can be announced.
   */
  async recordReading(
    provider: ProviderName,
    reading: CloneBudgetReading,
    settled: string,
    startedAt: Date,
  ): Promise<{ previousResetsAt: Date | null; resetsAt: Date | null } | null> {
    const rows: { previous: Date | null; resets_at: Date | null }[] = await this.ds.query(
      `WITH o AS (SELECT budget_resets_at AS previous FROM provider_accounts
                   WHERE provider = $1 AND account = $2 FOR UPDATE),
       u AS (
         UPDATE provider_accounts a SET budget_used = $3, budget_published = $4::int,
                clones_at_read = $5::bigint,
                budget_resets_at = COALESCE($6::timestamptz,
                  CASE WHEN a.budget_reset_source = 'configured' THEN a.budget_resets_at END),
                budget_reset_source = CASE WHEN $6::timestamptz IS NOT NULL THEN 'provider'
                  WHEN a.budget_reset_source = 'configured' THEN 'configured' END,
                -- A new period began (the reset moved past the refusal's end): spendable again.
                budget_exhausted_until = CASE
                  WHEN $6::timestamptz IS NOT NULL AND a.budget_exhausted_until IS NOT NULL
                       AND $6::timestamptz > a.budget_exhausted_until THEN NULL
                  ELSE a.budget_exhausted_until END,
                budget_spent_noted = a.budget_spent_noted AND NOT COALESCE(
                  $6::timestamptz > a.budget_resets_at, false),
                budget_checked_at = $7, updated_at = now()
           FROM o
          WHERE a.provider = $1 AND a.account = $2
            AND (a.budget_checked_at IS NULL OR a.budget_checked_at <= $7)
          RETURNING a.budget_resets_at)
       SELECT o.previous, u.budget_resets_at AS resets_at FROM o, u`,
      [
        provider,
        DEFAULT_ACCOUNT,
        reading.used,
        reading.limit,
        settled,
        reading.resetsAt,
        startedAt,
      ],
    );
    return rows.length ? { previousResetsAt: rows[0].previous, resetsAt: rows[0].resets_at } : null;
  }

  /** Clones that surely reached the provider by now: the claimed ones not allocating any more. */
  async settledClones(provider: ProviderName): Promise<string> {
    const [row]: { settled: string }[] = await this.ds.query(
      `SELECT ${SETTLED_SQL} AS settled FROM provider_accounts WHERE provider = $1 AND account = $2`,
      [provider, DEFAULT_ACCOUNT],
    );
    return String(row.settled);
  }

  /**
   * Starts the next period of a configured budget whose reset has passed: our own count starts
   * again from zero. True when this call started it (once across replicas).
   */
  async rollConfiguredPeriod(provider: ProviderName, periodSeconds: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `WITH u AS (
         UPDATE provider_accounts SET budget_used = 0, clones_at_read = ${SETTLED_SQL},
                budget_resets_at = budget_resets_at + make_interval(secs => $3) *
                  (floor(EXTRACT(EPOCH FROM now() - budget_resets_at) / $3) + 1),
                budget_exhausted_until = NULL, budget_spent_noted = false, updated_at = now()
          WHERE provider = $1 AND account = $2 AND budget_reset_source = 'configured'
            AND budget_resets_at <= now()
          RETURNING provider)
       SELECT * FROM u`,
      [provider, DEFAULT_ACCOUNT, periodSeconds],
    );
    return rows.length > 0;
  }

  /**
   * The provider refused a clone because the budget is spent: nothing more goes out until the
   * reset (or, when no reset is known, for `fallbackSeconds`). True when it was not marked before.
   */
  async markExhausted(provider: ProviderName, fallbackSeconds: number): Promise<boolean> {
    const rows: { was: Date | null }[] = await this.ds.query(
      `WITH o AS (SELECT budget_exhausted_until AS was FROM provider_accounts
                   WHERE provider = $1 AND account = $2 FOR UPDATE),
       u AS (
         UPDATE provider_accounts SET budget_exhausted_until =
                  COALESCE(CASE WHEN budget_resets_at > now() THEN budget_resets_at END,
                           now() + make_interval(secs => $3)),
                updated_at = now()
          WHERE provider = $1 AND account = $2 RETURNING provider)
       SELECT o.was FROM o, u`,
      [provider, DEFAULT_ACCOUNT, fallbackSeconds],
    );
    const was = rows[0]?.was ?? null;
    return was === null || was.getTime() <= Date.now();
  }

  /** Takes the one "spent" announcement of this period; true for exactly one caller. */
  async noteSpent(provider: ProviderName): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `WITH u AS (UPDATE provider_accounts SET budget_spent_noted = true
                   WHERE provider = $1 AND account = $2 AND NOT budget_spent_noted
                   RETURNING provider)
       SELECT * FROM u`,
      [provider, DEFAULT_ACCOUNT],
    );
    return rows.length > 0;
  }
}
