import { Injectable, Logger } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import type { Claimed } from './slots.repository';
import { SlotsRepository } from './slots.repository';

/** The replaced design's constants, reproduced as they were. */
const SCAN = 200;
const REQUEUE_BREAK = 10;
const JITTER_MS = 2_000;

/**
 * SCHEDULER_STRATEGY=legacy: the replaced design, reproduced so benchmarks compare both on the same
 * stack. A polling cycle scans the queue oldest-first across providers, checks capacity per voice
 * without a lock, pushes a voice back with random jitter when its provider is full, and gives up
 * the cycle after 10 such requeues — starving whatever stood behind them until the next tick.
 */
@Injectable()
export class LegacySchedulerService {
  private readonly logger = new Logger(LegacySchedulerService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly slots: SlotsRepository,
  ) {}

  get enabled(): boolean {
    return this.config.SCHEDULER_STRATEGY === 'legacy';
  }

  async cycle(
    enqueue: (provider: ProviderName, claimed: Claimed[]) => Promise<void>,
  ): Promise<number> {
    let requeued = 0;
    let claimedTotal = 0;
    for (const candidate of await this.slots.legacyCandidates(SCAN)) {
      const result = await this.slots.legacyTryClaim(
        candidate.id,
        candidate.provider,
        this.config.ALLOCATION_LEASE_SECONDS,
      );
      if (result === 'full') {
        await this.slots.legacyRequeue(candidate.id, Math.random() * JITTER_MS);
        if (++requeued > REQUEUE_BREAK) break;
      } else if (result) {
        await enqueue(candidate.provider, [result]);
        claimedTotal++;
      }
    }
    this.logger.debug({ claimed: claimedTotal, requeued }, 'legacy queue cycle');
    return claimedTotal;
  }
}
