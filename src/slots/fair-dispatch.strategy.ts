import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import type { CloneAllowance } from '../policy/clone-budget';
import { ClaimRepository, type ClaimBudget } from './claim.repository';
import { CloneBudgetService } from './clone-budget.service';
import { DispatchStrategy, type DispatchRun } from './dispatch-strategy';

/** How many voices one claim transaction takes at most; larger backlogs loop. */
const CLAIM_BATCH = 50;
/** Claims that lost a race for the budget are retried this often before leaving it to the next. */
const MAX_STALE_BUDGET_RETRIES = 10;
/** Beyond this the scheduler's tick runs long before a budget wake-up would. */
const MAX_BUDGET_TIMER_MS = 5 * 60_000;

/**
 * The production claim: batches of the provider's queued voices in fair order, under its row
 * lock, within what the clone budget lets out now (ARCHITECTURE "Main flows" 2).
 */
@Injectable()
export class FairDispatchStrategy extends DispatchStrategy implements OnApplicationShutdown {
  /** Per provider, a dispatch at the moment the budget next lets a held-back clone out. */
  private readonly budgetWakeUps = new Map<ProviderName, { at: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly config: AppConfig,
    private readonly claims: ClaimRepository,
    private readonly budget: CloneBudgetService,
  ) {
    super();
  }

  async run(provider: ProviderName, run: DispatchRun): Promise<number> {
    let total = 0;
    let staleRetries = 0;
    for (;;) {
      run.startPass();
      const { account, allowance } = await this.budget.view(provider);
      const budget: ClaimBudget | undefined =
        allowance.limit === null && !allowance.exhausted
          ? undefined
          : {
              expectedTotal: account.clonesTotal,
              first: allowance.first,
              reclone: allowance.reclone,
            };
      const result = await this.claims.claimBatch(provider, {
        max: CLAIM_BATCH,
        allocationLeaseSeconds: this.config.ALLOCATION_LEASE_SECONDS,
        breakerCooldownSeconds: this.config.BREAKER_COOLDOWN_SECONDS,
        budget,
      });
      if (result.stale) {
        // Another dispatcher spent budget between our read and our lock: decide again.
        if (++staleRetries <= MAX_STALE_BUDGET_RETRIES) continue;
        return total;
      }
      const claimed = result.claimed;
      if (result.heldBackByBudget > 0) {
        this.budget.recordRefused(
          provider,
          allowance.exhausted ? 'exhausted' : 'paced',
          result.heldBackByBudget,
        );
        this.wakeForBudget(provider, allowance, run);
      }
      if (claimed.length) {
        await run.enqueue(provider, claimed);
        total += claimed.length;
      }
      if (claimed.length < CLAIM_BATCH && !run.rerunRequested()) {
        // Either the queue is empty or the pool is full; listeners tell which cheaply.
        run.saturated();
        return total;
      }
    }
  }

  /**
   * Voices wait because the budget said no: dispatch again the moment it says yes (the pacing's
   * next step, the reset), so hand-over does not wait for the scheduler's tick.
   */
  private wakeForBudget(provider: ProviderName, allowance: CloneAllowance, run: DispatchRun): void {
    const moments = [allowance.recloneAllowedAt, allowance.resetsAt].filter(
      (t): t is number => t !== null && t > Date.now(),
    );
    if (!moments.length) return;
    const at = Math.min(...moments) + 25;
    if (at - Date.now() > MAX_BUDGET_TIMER_MS) return;
    const current = this.budgetWakeUps.get(provider);
    if (current && current.at <= at) return;
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(() => {
      this.budgetWakeUps.delete(provider);
      run.nudge();
    }, at - Date.now());
    timer.unref();
    this.budgetWakeUps.set(provider, { at, timer });
  }

  onApplicationShutdown(): void {
    for (const { timer } of this.budgetWakeUps.values()) clearTimeout(timer);
    this.budgetWakeUps.clear();
  }
}
