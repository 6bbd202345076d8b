import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { ProviderRegistry } from '../providers/provider-registry';
import { VoiceCleanupRepository } from '../voice/voice-cleanup.repository';
import { secondsFromNow, sql, VoiceRepository } from '../voice/voice.repository';
import { AllocationLeaseRepository } from './allocation-lease.repository';
import { CapacityService } from './capacity.service';
import { DispatcherService } from './dispatcher.service';

const SWEEP_BATCH = 100;

/**
 * Resolves what crashes and lost jobs leave behind: allocations whose lease expired are adopted
 * (the remote voice exists under our key) or queued again; clean-ups (remote voices, deleted
 * voices' samples) whose job was lost are scheduled again. Runs in the scheduler role, once per
 * tick across replicas.
 */
@Injectable()
export class SweeperService {
  private readonly logger = new Logger(SweeperService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly leases: AllocationLeaseRepository,
    private readonly voices: VoiceRepository,
    private readonly cleanups: VoiceCleanupRepository,
    private readonly providers: ProviderRegistry,
    private readonly dispatcher: DispatcherService,
    private readonly capacity: CapacityService,
  ) {}

  async sweepExpiredAllocations(): Promise<number> {
    const expired = await this.leases.expiredAllocations(SWEEP_BATCH);
    let resolved = 0;
    for (const { id, fencingToken } of expired) {
      try {
        if (await this.resolveExpired(id, fencingToken)) resolved++;
      } catch (err) {
        this.logger.warn(
          { err, voiceId: id },
          'could not resolve an expired allocation; next sweep retries',
        );
      }
    }
    return resolved;
  }

  private async resolveExpired(id: string, token: string): Promise<boolean> {
    // Take the voice over first (new token, fresh lease), so the stale worker can no longer act.
    const taken = await this.voices.transition({
      id,
      from: ['allocating'],
      token,
      to: 'allocating',
      bumpToken: true,
      set: { allocationLeaseExpiresAt: secondsFromNow(this.config.ALLOCATION_LEASE_SECONDS) },
      event: { type: 'requeued', reason: 'lease_expired', metadata: { step: 'take_over' } },
    });
    if (!taken) return false;
    const found = await this.providers.get(taken.provider).findByIdempotencyKey(taken.id);
    const ctx = { voiceId: id, userId: taken.userId, provider: taken.provider };
    if (found) {
      await this.voices.transition({
        id,
        from: ['allocating'],
        token: taken.fencingToken,
        to: 'ready',
        set: {
          remoteVoiceId: found.remoteVoiceId,
          readyAt: sql('now()'),
          lastUsedAt: sql('now()'),
          allocationLeaseExpiresAt: null,
        },
        event: {
          type: 'adopted',
          reason: 'lease_expired',
          metadata: { remoteVoiceId: found.remoteVoiceId },
        },
      });
      this.logger.warn(
        { ...ctx, remoteVoiceId: found.remoteVoiceId },
        'expired allocation adopted its remote voice',
      );
    } else {
      await this.voices.transition({
        id,
        from: ['allocating'],
        token: taken.fencingToken,
        to: 'queued',
        bumpToken: true,
        set: { allocationLeaseExpiresAt: null },
        event: { type: 'requeued', reason: 'lease_expired' },
      });
      this.logger.warn(ctx, 'expired allocation queued again');
      this.dispatcher.nudge(taken.provider);
    }
    return true;
  }

  /**
   * Schedules the clean-up again for voices whose remote voice or (deleted) sample is still
   * pending in Postgres: its job was lost with Redis, failed for good, or its last removal failed
   * and its back-off has passed.
   */
  async sweepCleanups(): Promise<number> {
    const ids = new Set([
      ...(await this.cleanups.cleanupPending(SWEEP_BATCH)),
      ...(await this.cleanups.sampleRemovalsDue(SWEEP_BATCH)),
    ]);
    for (const id of ids) await this.capacity.scheduleCleanup(id);
    return ids.size;
  }
}
