import type { ProviderName } from '../config/app-config';
import type { Claimed } from './claim.repository';

/** What a dispatch run may ask of the dispatcher that runs it (DispatcherService). */
export interface DispatchRun {
  /** Enqueues one allocation job per claimed voice (after the claim committed). */
  enqueue(provider: ProviderName, claimed: Claimed[]): Promise<void>;
  /** Starts a pass: forgets the requests for another run made so far. */
  startPass(): void;
  /** Another dispatch of this provider was asked for since the current pass started. */
  rerunRequested(): boolean;
  /** The provider ran out of free slots or of queued voices: observers (reclaim) decide which. */
  saturated(): void;
  /** Dispatches again later, outside this run (a budget wake-up). */
  nudge(): void;
}

/**
 * How queued voices are claimed: the production design (FairDispatchStrategy) or, for benchmarks,
 * the replaced one (LegacyDispatchStrategy), chosen by SCHEDULER_STRATEGY.
 */
export abstract class DispatchStrategy {
  /** Claims what the provider's free slots allow; resolves with the number of voices claimed. */
  abstract run(provider: ProviderName, run: DispatchRun): Promise<number>;
}
