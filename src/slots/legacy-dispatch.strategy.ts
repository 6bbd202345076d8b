import { Injectable, Logger } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { VoiceRepository } from '../voice/voice.repository';
import { DispatchStrategy, type DispatchRun } from './dispatch-strategy';
import { LegacyClaimRepository } from './legacy-claim.repository';

/** The replaced design's constants, reproduced as they were. */
const SCAN = 200;
const REQUEUE_BREAK = 10;
const JITTER_MS = 2_000;

/**
 * SCHEDULER_STRATEGY=legacy: the replaced design, reproduced so benchmarks compare both on the same
 * stack. A polling cycle scans the queue oldest-first across providers, checks capacity per voice
 * without a lock, pushes a voice back with random jitter when its provider is full, and gives up
 * the cycle after 10 such requeues — starving whatever stood behind them until the next tick. It
 * has no per-provider dispatch: whichever provider asked, one cycle covers every queue.
 */
@Injectable()
export class LegacyDispatchStrategy extends DispatchStrategy {
  private readonly logger = new Logger(LegacyDispatchStrategy.name);

  constructor(
    private readonly config: AppConfig,
    private readonly legacy: LegacyClaimRepository,
    private readonly voices: VoiceRepository,
  ) {
    super();
  }

  async run(_provider: ProviderName, run: DispatchRun): Promise<number> {
    let requeued = 0;
    let claimedTotal = 0;
    for (const candidate of await this.legacy.candidates(SCAN)) {
      const result = await this.legacy.tryClaim(
        candidate.id,
        candidate.provider,
        this.config.ALLOCATION_LEASE_SECONDS,
      );
      if (result === 'full') {
        await this.voices.pushBack(candidate.id, Math.random() * JITTER_MS);
        if (++requeued > REQUEUE_BREAK) break;
      } else if (result) {
        await run.enqueue(candidate.provider, [result]);
        claimedTotal++;
      }
    }
    this.logger.debug({ claimed: claimedTotal, requeued }, 'legacy queue cycle');
    return claimedTotal;
  }
}
