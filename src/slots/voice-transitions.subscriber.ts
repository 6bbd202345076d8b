import { Injectable, type OnModuleInit } from '@nestjs/common';
import { VoiceTransitionHooks, type VoiceTransition } from '../voice/voice-transition.hooks';
import type { VoiceStatus } from '../voice/voice-status';
import { CapacityService } from './capacity.service';
import { DispatcherService } from './dispatcher.service';

/**
 * Where a voice enters the queue from outside the allocation pipeline: its metadata was valid, an
 * app activated it again, an admin retried it, reconciliation put it back. The pipeline's own
 * returns to the queue (allocating → queued) dispatch as their cause requires: a capacity refusal
 * waits for the recount, so it must not dispatch at once.
 */
const QUEUED_FROM_OUTSIDE: ReadonlySet<VoiceStatus> = new Set(['pending', 'reclaimed', 'failed']);

/** How the slot pool reacts to voice transitions (post-commit hooks, see VoiceTransitionHooks). */
@Injectable()
export class VoiceTransitionsSubscriber implements OnModuleInit {
  constructor(
    private readonly hooks: VoiceTransitionHooks,
    private readonly dispatcher: DispatcherService,
    private readonly capacity: CapacityService,
  ) {}

  onModuleInit(): void {
    this.hooks.subscribe('slots', (t) => this.react(t));
  }

  private async react(t: VoiceTransition): Promise<void> {
    if (t.to === 'queued' && QUEUED_FROM_OUTSIDE.has(t.from)) this.dispatcher.nudge(t.provider);
    // A deleted voice may still hold a remote voice (its slot stays counted) and has a sample.
    if (t.to === 'deleted') await this.capacity.scheduleCleanup(t.voice.id);
  }
}
