import { Injectable, Logger } from '@nestjs/common';
import { ApiError } from '../common/problem';
import type { Voice } from './voice';
import { voiceNotFound } from './voice-errors';
import { sql, VoiceRepository } from './voice.repository';

/**
 * The moves of a voice that are neither upload nor activation: the user's delete and an admin's
 * retry of a failed voice. What follows them (dispatch, remote clean-up) is for the transition
 * hooks' subscribers.
 */
@Injectable()
export class VoiceLifecycleService {
  private readonly logger = new Logger(VoiceLifecycleService.name);

  constructor(private readonly voices: VoiceRepository) {}

  /**
   * An admin sends a dead letter back to the queue with a fresh attempt budget. Refused while a
   * remote voice of its last attempts may still be being cleaned up, so the clean-up never races
   * a new clone under the same key.
   */
  async retryFailed(id: string): Promise<Voice> {
    const voice = await this.voices.findById(id);
    if (!voice) throw voiceNotFound();
    if (voice.status !== 'failed') {
      throw new ApiError(
        409,
        'voice_not_failed',
        `Only failed voices can be retried; this one is ${voice.status}`,
      );
    }
    if (voice.remoteCleanupPending) {
      throw new ApiError(
        409,
        'cleanup_pending',
        'The last attempt is still being cleaned up; retry in a minute',
      );
    }
    const queued = await this.voices.queueFairly({
      id,
      provider: voice.provider,
      userId: voice.userId,
      from: ['failed'],
      set: { attempts: 0, failureCode: null, failureMessage: null },
      event: {
        type: 'retried',
        reason: 'admin_retry',
        metadata: { previousFailure: voice.failureCode },
      },
    });
    if (!queued) return this.retryFailed(id);
    return queued;
  }

  async delete(userId: string, id: string): Promise<Voice> {
    const voice = await this.voices.findById(id, userId);
    if (!voice) throw voiceNotFound();
    if (voice.status === 'deleted') return voice;
    const deleted = await this.voices.transition({
      id,
      userId,
      from: ['pending', 'queued', 'allocating', 'ready', 'reclaiming', 'reclaimed', 'failed'],
      to: 'deleted',
      // Fences an in-flight allocation: its late create is deleted by its own compensation.
      bumpToken: true,
      set: {
        // The slot stays counted until the remote voice is confirmed gone.
        remoteCleanupPending: sql(
          `v.remote_cleanup_pending OR v.status IN ('allocating','ready','reclaiming')`,
        ),
        allocationLeaseExpiresAt: null,
        leaseExpiresAt: null,
        // Whatever state it left, its sample goes; recorded here so a lost job cannot forget it.
        sampleRemovalDueAt: sql('now()'),
      },
      event: { type: 'deleted', reason: 'user_delete' },
    });
    if (!deleted) return this.delete(userId, id); // raced with another transition: read again
    // Its remote voice and sample are cleaned up by slots, told by the transition hooks.
    this.logger.log(
      { voiceId: id, userId, provider: voice.provider, from: voice.status },
      'voice deleted',
    );
    return deleted;
  }
}
