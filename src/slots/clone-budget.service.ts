import { Injectable, Logger } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import {
  type CloneAllowance,
  cloneAllowance,
  type CloneBudgetSettings,
  budgetSettings,
} from '../policy/clone-budget';
import {
  type AccountBudget,
  budgetState,
  ProviderAccountsRepository,
} from '../providers/provider-accounts.repository';
import { ProviderRegistry } from '../providers/provider-registry';
import { SlotsRepository } from './slots.repository';

/** A budget spent without a known reset is tried again after this long. */
const UNKNOWN_RESET_RETRY_SECONDS = 3600;
/** Refreshes after clone outcomes are coalesced to at most one per this long per process. */
const OUTCOME_REFRESH_MIN_INTERVAL_MS = 1_000;

export interface BudgetView {
  account: AccountBudget;
  allowance: CloneAllowance;
}

/** Told of queued voices a dispatch held back because of the budget (metrics). */
export type BudgetRefusalListener = (
  provider: ProviderName,
  reason: 'paced' | 'exhausted',
  voices: number,
) => void;

/**
 * The clone budget of each provider account (ARCHITECTURE invariant 9): reads it from the
 * provider, counts our clones in between (in the claim, under the provider lock), and answers what
 * the budget lets out now through the pure decision in src/policy/clone-budget.ts.
 */
@Injectable()
export class CloneBudgetService {
  private readonly logger = new Logger(CloneBudgetService.name);
  private readonly refreshing = new Map<ProviderName, Promise<void>>();
  private readonly outcomeRefresh = new Map<ProviderName, NodeJS.Timeout>();
  private readonly refusalListeners: BudgetRefusalListener[] = [];
  readonly settings: CloneBudgetSettings;

  constructor(
    private readonly config: AppConfig,
    private readonly accounts: ProviderAccountsRepository,
    private readonly slots: SlotsRepository,
    private readonly providers: ProviderRegistry,
  ) {
    this.settings = budgetSettings(config);
  }

  /** Writes the configured budgets; called at start with the configured slot limits. */
  async applyConfigured(): Promise<void> {
    for (const name of this.providers.enabled()) {
      await this.accounts.configure(
        name,
        this.config.providers[name].cloneBudget ?? null,
        this.settings.periodSeconds,
      );
    }
  }

  /**
   * Reads the account (slot limit and clone budget) from the provider. Concurrent calls in one
   * process share one read.
   */
  refreshAccount(provider: ProviderName): Promise<void> {
    const current = this.refreshing.get(provider);
    if (current) return current;
    const run = this.readAccount(provider).finally(() => this.refreshing.delete(provider));
    this.refreshing.set(provider, run);
    return run;
  }

  private async readAccount(provider: ProviderName): Promise<void> {
    const startedAt = new Date();
    const settled = await this.accounts.settledClones(provider);
    const limits = await this.providers.get(provider).getAccountLimits();
    await this.slots.setLimits(provider, { accountLimit: limits.voiceLimit });
    if (limits.cloneBudget) {
      const changed = await this.accounts.recordReading(
        provider,
        limits.cloneBudget,
        settled,
        startedAt,
      );
      const previous = changed?.previousResetsAt?.getTime() ?? null;
      const now = changed?.resetsAt?.getTime() ?? null;
      if (previous !== null && now !== null && now > previous) {
        this.logger.log(
          { provider, resetsAt: changed?.resetsAt, used: limits.cloneBudget.used },
          'clone budget reset: a new budget period began',
        );
      }
    }
    this.logger.debug(
      { provider, accountLimit: limits.voiceLimit, cloneBudget: limits.cloneBudget },
      'account refreshed',
    );
  }

  /**
   * Refreshes the account soon after a clone's outcome, where the provider publishes a counter,
   * so someone else spending the budget on the same account is noticed. Coalesced per process.
   */
  afterCloneOutcome(provider: ProviderName): void {
    if (this.outcomeRefresh.has(provider)) return;
    const timer = setTimeout(() => {
      this.outcomeRefresh.delete(provider);
      void this.accounts
        .budget(provider)
        .then((a) =>
          a.published !== null || a.resetSource === 'provider'
            ? this.refreshAccount(provider)
            : undefined,
        )
        .catch((err: unknown) =>
          this.logger.warn({ err, provider }, 'account refresh after a clone failed'),
        );
    }, OUTCOME_REFRESH_MIN_INTERVAL_MS);
    timer.unref();
    this.outcomeRefresh.set(provider, timer);
  }

  /**
   * What the budget lets out now. A period whose reset has passed is turned over first: our own
   * count restarts for a configured budget, the provider is read again for a published one.
   */
  async view(provider: ProviderName, now = Date.now()): Promise<BudgetView> {
    let account = await this.accounts.budget(provider);
    const resetsAt = account.resetsAt?.getTime() ?? null;
    if (resetsAt !== null && resetsAt <= now) {
      if (account.resetSource === 'configured') {
        if (await this.accounts.rollConfiguredPeriod(provider, this.settings.periodSeconds)) {
          this.logger.log({ provider }, 'clone budget reset: a new budget period began');
        }
      } else {
        await this.refreshAccount(provider).catch((err: unknown) =>
          this.logger.warn({ err, provider }, 'could not read the account after its reset'),
        );
      }
      account = await this.accounts.budget(provider);
    }
    const allowance = cloneAllowance(budgetState(account), this.settings, now);
    if (allowance.exhausted && !account.spentNoted && (await this.accounts.noteSpent(provider))) {
      this.logger.warn(
        {
          provider,
          limit: allowance.limit,
          resetsAt: allowance.resetsAt && new Date(allowance.resetsAt),
        },
        'clone budget spent: no clone goes out before the reset',
      );
    }
    return { account, allowance };
  }

  /** The provider refused a clone for the budget: nothing more goes out before the reset. */
  async markExhausted(provider: ProviderName): Promise<void> {
    await this.accounts.markExhausted(provider, UNKNOWN_RESET_RETRY_SECONDS);
    // The one log line of the period is written by view(), which sees it exhausted now.
    await this.view(provider);
    this.afterCloneOutcome(provider);
  }

  onRefused(listener: BudgetRefusalListener): void {
    this.refusalListeners.push(listener);
  }

  recordRefused(provider: ProviderName, reason: 'paced' | 'exhausted', voices: number): void {
    if (voices <= 0) return;
    for (const listener of this.refusalListeners) listener(provider, reason, voices);
  }
}
