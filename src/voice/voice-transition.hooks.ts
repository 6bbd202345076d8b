import { Injectable, Logger } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import type { Voice } from './voice';
import type { VoiceEventReason, VoiceEventType, VoiceStatus } from './voice-status';

/** A transition that committed: voice `voice.id` of `provider` went from `from` to `to`. */
export interface VoiceTransition {
  voice: Voice;
  provider: ProviderName;
  from: VoiceStatus;
  to: VoiceStatus;
  event: { type: VoiceEventType; reason: VoiceEventReason; metadata?: Record<string, unknown> };
}

export type VoiceTransitionSubscriber = (t: VoiceTransition) => void | Promise<void>;

/**
 * Post-commit hooks on voice transitions. The folders above voice (slots, reclaim, metrics) react
 * to what voices do by subscribing here at module init, so voice never calls them (the dependency
 * direction of ARCHITECTURE.md). Published only after the transaction that made the transition
 * committed: a subscriber acting on a rolled-back or not yet visible state would dispatch or clean
 * up a voice that is not there. A subscriber that fails is logged and never fails the transition.
 */
@Injectable()
export class VoiceTransitionHooks {
  private readonly logger = new Logger(VoiceTransitionHooks.name);
  private readonly subscribers: { name: string; fn: VoiceTransitionSubscriber }[] = [];

  subscribe(name: string, fn: VoiceTransitionSubscriber): void {
    this.subscribers.push({ name, fn });
  }

  /**
   * Tells every subscriber, in the order they subscribed. Resolves once the asynchronous ones
   * settled, so a caller that awaits it sees their work done (a clean-up enqueued before a delete
   * answers); synchronous subscribers cost no extra turn of the event loop beyond one await.
   */
  async publish(t: VoiceTransition): Promise<void> {
    const running: Promise<void>[] = [];
    for (const { name, fn } of this.subscribers) {
      try {
        const result = fn(t);
        if (result) running.push(result.catch((err: unknown) => this.failed(name, t, err)));
      } catch (err) {
        this.failed(name, t, err);
      }
    }
    if (running.length) await Promise.all(running);
  }

  private failed(name: string, t: VoiceTransition, err: unknown): void {
    this.logger.warn(
      { err, subscriber: name, voiceId: t.voice.id, from: t.from, to: t.to },
      'voice transition subscriber failed',
    );
  }
}
