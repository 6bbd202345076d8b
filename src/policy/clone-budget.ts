/**
 * The clone budget as a pure decision: how many clones may go out now, given what is known of a
 * provider account's budget of clone operations per billing period (ElevenLabs' add/edit counter,
 * which a delete never refunds) and the time. No I/O and no clock of its own, so the service's
 * claim and reclaim and the replay tool (`npm run replay`) decide exactly alike.
 *
 * The pacing rule, and why:
 * - A voice that was never cloned (a new user's first voice) may use the whole remaining budget,
 *   at once: nobody else can serve that user, and the first clone is what the budget is for.
 * - A re-clone (a voice reclaimed earlier and activated again) may not use the reserve
 *   (`reserveShare` of the period's budget, kept for first clones), and is paced: by the share
 *   `f` of the period that has passed, re-clones and first clones together may have spent at most
 *   `burst + (limit - reserve - burst) * f`, where `burst` is `burstShare` of what re-clones may
 *   use (at least one). Under a standing backlog the re-clone budget therefore runs out at the reset, not in the
 *   first hours, and slots are not churned faster than the budget can refill them; the burst lets
 *   a quiet account absorb a short rush without waiting.
 */

export interface CloneBudgetSettings {
  /** Share of a period's budget that only first clones may use (CLONE_BUDGET_RESERVE). */
  reserveShare: number;
  /** Length of a budget period, for the pacing (CLONE_BUDGET_PERIOD_DAYS in seconds). */
  periodSeconds: number;
  /** Share of the re-clone budget available at once at the start of a period. */
  burstShare: number;
}

export const DEFAULT_BURST_SHARE = 0.1;

export interface CloneBudgetState {
  /** Clone operations per period; null when no budget is known (unlimited). */
  limit: number | null;
  /**
   * Clone operations counted this period: the provider's own counter at its last read plus the
   * clones claimed since (counted conservatively: a claim counts before its clone goes out).
   */
  spent: number;
  /** When the period (and with it the counter) resets, epoch ms; null when unknown. */
  resetsAt: number | null;
  /** The provider said the budget is spent: no clone goes out before this moment (epoch ms). */
  exhaustedUntil: number | null;
}

export interface CloneAllowance {
  /** Clones of never-cloned voices that may go out now (Infinity when there is no budget). */
  first: number;
  /** Clones of voices cloned before (re-clones after a reclaim) that may go out now (≤ first). */
  reclone: number;
  /** No clone of any kind may go out before the reset. */
  exhausted: boolean;
  /** The budget's limit, remaining and reset as known (for display and metrics). */
  limit: number | null;
  remaining: number | null;
  resetsAt: number | null;
  /** When the pacing next lets a re-clone out, epoch ms; null when it does now or never can. */
  recloneAllowedAt: number | null;
}

/** No clone budget: every waiting voice may be cloned (budget-less accounts, tests, benchmarks). */
export const UNLIMITED_CLONES: CloneAllowance = {
  first: Infinity,
  reclone: Infinity,
  exhausted: false,
  limit: null,
  remaining: null,
  resetsAt: null,
  recloneAllowedAt: null,
};

/** The reserve of a period's budget, in clones. */
export function reserveOf(limit: number, reserveShare: number): number {
  return Math.min(limit, Math.ceil(limit * reserveShare));
}

/** What the budget lets out now. Pure: the same state, settings and time give the same answer. */
export function cloneAllowance(
  state: CloneBudgetState,
  settings: CloneBudgetSettings,
  now: number,
): CloneAllowance {
  const resetsAt = state.resetsAt;
  if (state.exhaustedUntil !== null && now < state.exhaustedUntil) {
    return {
      first: 0,
      reclone: 0,
      exhausted: true,
      limit: state.limit,
      remaining: 0,
      resetsAt: resetsAt ?? state.exhaustedUntil,
      recloneAllowedAt: null,
    };
  }
  if (state.limit === null) {
    return {
      first: Infinity,
      reclone: Infinity,
      exhausted: false,
      limit: null,
      remaining: null,
      resetsAt,
      recloneAllowedAt: null,
    };
  }
  const limit = state.limit;
  const remaining = Math.max(0, limit - state.spent);
  const recloneCap = limit - reserveOf(limit, settings.reserveShare);
  const periodMs = settings.periodSeconds * 1000;
  // Without a known reset the pacing cannot tell how far into the period we are: no pacing then,
  // only the reserve.
  const elapsed =
    resetsAt === null || periodMs <= 0
      ? 1
      : Math.min(1, Math.max(0, 1 - (resetsAt - now) / periodMs));
  // At least one clone, so that a small budget (a test account, a handful a month) is not held
  // back entirely at the start of a period.
  const burst = Math.min(recloneCap, Math.max(1, recloneCap * settings.burstShare));
  const paced = Math.floor(burst + (recloneCap - burst) * elapsed);
  const reclone = Math.max(0, Math.min(remaining, paced - state.spent));
  let recloneAllowedAt: number | null = null;
  if (
    reclone === 0 &&
    state.spent < recloneCap &&
    recloneCap > burst &&
    resetsAt !== null &&
    periodMs > 0
  ) {
    // The moment `paced` reaches spent + 1.
    const need = (state.spent + 1 - burst) / (recloneCap - burst);
    recloneAllowedAt = Math.ceil(resetsAt - periodMs + need * periodMs);
  }
  return {
    first: remaining,
    reclone,
    exhausted: remaining === 0,
    limit,
    remaining,
    resetsAt,
    recloneAllowedAt,
  };
}

/** Whether a clone of this kind may go out now. */
export function mayClone(allowance: CloneAllowance, clonedBefore: boolean): boolean {
  return (clonedBefore ? allowance.reclone : allowance.first) > 0;
}

/** The settings from the service's configuration (CLONE_BUDGET_RESERVE, CLONE_BUDGET_PERIOD_DAYS). */
export function budgetSettings(env: {
  CLONE_BUDGET_RESERVE: number;
  CLONE_BUDGET_PERIOD_DAYS: number;
}): CloneBudgetSettings {
  return {
    reserveShare: env.CLONE_BUDGET_RESERVE,
    periodSeconds: env.CLONE_BUDGET_PERIOD_DAYS * 86_400,
    burstShare: DEFAULT_BURST_SHARE,
  };
}
