import {
  cloneAllowance,
  UNLIMITED_CLONES,
  type CloneAllowance,
  type CloneBudgetSettings,
  type CloneBudgetState,
} from '../policy/clone-budget';
import type { ReplayOptions } from './replay-options';

const UNLIMITED = UNLIMITED_CLONES;

/** The clone budget over simulated time: periods of `periodDays` from the trace's start. */
export class SimulatedBudget {
  private readonly state: CloneBudgetState;
  private readonly settings: CloneBudgetSettings;
  private readonly periodMs: number;
  private period = 0;
  readonly exhaustedByPeriod: (number | null)[] = [null];

  constructor(limit: number | null, o: ReplayOptions) {
    this.periodMs = o.periodDays * 86400 * 1000;
    this.state = {
      limit,
      spent: 0,
      resetsAt: limit === null ? null : this.periodMs,
      exhaustedUntil: null,
    };
    this.settings = {
      reserveShare: o.reserveShare,
      periodSeconds: o.periodDays * 86400,
      burstShare: o.burstShare,
    };
  }

  allowance(now: number): CloneAllowance {
    if (this.state.limit === null) return UNLIMITED;
    const period = Math.floor(now / this.periodMs);
    if (period > this.period) {
      this.period = period;
      this.state.spent = 0;
      this.state.resetsAt = (period + 1) * this.periodMs;
      while (this.exhaustedByPeriod.length <= period) this.exhaustedByPeriod.push(null);
    }
    return cloneAllowance(this.state, this.settings, now);
  }

  spend(now: number): void {
    if (this.state.limit === null) return;
    this.state.spent++;
    if (this.state.spent >= this.state.limit && this.exhaustedByPeriod[this.period] === null)
      this.exhaustedByPeriod[this.period] = now / 1000;
  }

  firstExhaustion(): number | null {
    return this.exhaustedByPeriod.find((e) => e !== null) ?? null;
  }
}
