import { Injectable } from '@nestjs/common';
import { ApiError } from '../common/problem';
import { whileDatabaseReturns } from '../common/database-errors';
import { AppConfig } from '../config/config.module';
import { LastUseRecorder } from './last-use.recorder';
import { LongPollGate } from './long-poll.gate';
import { publicFailure } from './public-failure';
import { queueInfoOptions, QueuePositionRepository } from './queue-position.repository';
import { ReadyVoiceCache, type ReadTicket } from './ready-voice.cache';
import type { Voice } from './voice';
import { VoiceEventsListener } from './voice-events.listener';
import { pendingLimit, voiceNotFound } from './voice-errors';
import { secondsFromNow, sql, usageSet, VoiceRepository } from './voice.repository';
import type { VoiceView } from './voice-queries.service';

export interface ActivationResult extends VoiceView {
  ready: boolean;
}

/** Activation, the hot path: a ready voice answers from memory; a reclaimed one queues again. */
@Injectable()
export class VoiceActivationService {
  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly positions: QueuePositionRepository,
    private readonly listener: VoiceEventsListener,
    private readonly lastUse: LastUseRecorder,
    private readonly readyVoices: ReadyVoiceCache,
    private readonly longPolls: LongPollGate,
  ) {}

  /**
   * Makes a voice usable: a ready voice gets its lease extended at once; a reclaimed one queues
   * again (twice-called, it still queues once: the transition is compare-and-set); the rest report
   * their place. With waitSeconds, waits for `ready` on the commit notification.
   */
  async activate(userId: string, id: string, waitSeconds: number): Promise<ActivationResult> {
    // The hot path: a ready voice of this user, read moments ago, whose lease has time to run.
    const now = Date.now();
    const cached = this.readyVoices.get(id, userId, now);
    if (cached && this.leaseHasHalfLeft(cached, now)) return this.answerWithoutWrite(cached, now);
    // A request that meets a Postgres restart waits for it (a few seconds at most) rather than
    // failing: every step below is a read or a compare-and-set, safe to run again.
    return whileDatabaseReturns(() => this.activateUncached(userId, id, waitSeconds, now));
  }

  private async activateUncached(
    userId: string,
    id: string,
    waitSeconds: number,
    now: number,
  ): Promise<ActivationResult> {
    // Over the cap of waiting activations, this one answers at once (see LongPollGate).
    const release = waitSeconds > 0 ? this.longPolls.tryEnter(userId) : null;
    let subscription: Awaited<ReturnType<VoiceEventsListener['subscribe']>> | null = null;
    try {
      if (release)
        subscription = await this.listener.subscribe(
          id,
          ['ready', 'failed', 'deleted'],
          waitSeconds * 1000,
        );
      const ticket = this.readyVoices.ticket(now);
      let voice = await this.voices.findById(id, userId);
      if (!voice) throw voiceNotFound();
      if (voice.status === 'reclaimed') {
        voice = (await this.requeue(voice)) ?? (await this.voices.findById(id, userId)) ?? voice;
      }
      if (
        voice.status !== 'ready' &&
        subscription &&
        ['pending', 'queued', 'allocating', 'reclaiming'].includes(voice.status)
      ) {
        // Read again whatever ended the wait: at its timeout too, as a notification sent while
        // the listener was reconnecting may have gone unheard.
        await subscription.wait;
        voice = (await this.voices.findById(id, userId)) ?? voice;
        // Reclaimed while this request waited (it was reclaiming when read): the app still wants
        // it, so it queues again, as if this activation had come a moment later.
        if (voice.status === 'reclaimed') {
          voice = (await this.requeue(voice)) ?? (await this.voices.findById(id, userId)) ?? voice;
        }
      }
      return await this.answerActivation(userId, voice, ticket);
    } finally {
      subscription?.cancel();
      release?.();
    }
  }

  /**
   * `ticket` was taken before `voice` was read: a ready voice answered without a write is cached
   * with it, unless it changed since (see ReadyVoiceCache); null when it must not be cached.
   */
  private async answerActivation(
    userId: string,
    voice: Voice,
    ticket: ReadTicket = null,
  ): Promise<ActivationResult> {
    const id = voice.id;
    switch (voice.status) {
      case 'ready': {
        const now = Date.now();
        if (this.leaseHasHalfLeft(voice, now)) {
          this.readyVoices.fill(voice, ticket, now);
          return this.answerWithoutWrite(voice, now);
        }
        const leased = await this.voices.transition({
          id,
          from: ['ready'],
          to: 'ready',
          userId,
          set: {
            leaseExpiresAt: secondsFromNow(this.config.ACTIVATION_LEASE_SECONDS),
            lastUsedAt: sql('now()'),
            ...usageSet('now()'),
          },
          event: { type: 'activated', reason: 'activation' },
        });
        if (leased) return { voice: leased, queue: null, ready: true };
        // Reclaimed or deleted in between: answer for the state it is in now.
        const current = await this.voices.findById(id, userId);
        if (!current || current.status === 'ready') throw voiceNotFound();
        return this.answerActivation(userId, current);
      }
      case 'failed':
        throw new ApiError(
          409,
          'voice_failed',
          `The voice failed: ${publicFailure(voice.failureCode).code}`,
        );
      case 'deleted':
        throw new ApiError(409, 'voice_deleted', 'The voice was deleted');
      case 'pending':
      case 'queued':
      case 'allocating':
      case 'reclaiming':
      case 'reclaimed':
        return {
          voice,
          queue: await this.positions.queuePosition(voice, queueInfoOptions(this.config)),
          ready: false,
        };
    }
  }

  /**
   * A lease with more than half to run is not renewed: activating answers without a write. The
   * lease is only ever extended or cleared by a transition, so this holds for a cached read too.
   */
  private leaseHasHalfLeft(voice: Voice, now: number): boolean {
    const leaseMs = this.config.ACTIVATION_LEASE_SECONDS * 1000;
    return !!voice.leaseExpiresAt && voice.leaseExpiresAt.getTime() - now > leaseMs / 2;
  }

  /** The use is recorded in the next batch (LastUseRecorder), not written now. */
  private answerWithoutWrite(voice: Voice, now: number): ActivationResult {
    const at = new Date(now);
    this.lastUse.record(voice.id, at);
    return { voice: { ...voice, lastUsedAt: at }, queue: null, ready: true };
  }

  private async requeue(voice: Voice): Promise<Voice | null> {
    const queued = await this.voices.queueFairly(
      {
        id: voice.id,
        provider: voice.provider,
        userId: voice.userId,
        from: ['reclaimed'],
        set: { attempts: 0, remoteTries: 0, remoteVoiceId: null },
        event: { type: 'requeued', reason: 'activation' },
      },
      (waiting) => {
        if (waiting >= this.config.USER_MAX_PENDING)
          throw pendingLimit(this.config.USER_MAX_PENDING);
      },
    );
    return queued;
  }
}
