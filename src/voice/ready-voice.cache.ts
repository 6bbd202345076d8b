import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import type { Voice } from './voice';
import { VoiceEventsListener } from './voice-events.listener';
import { VoiceRepository } from './voice.repository';

/** Ready voices are at most the providers' slot limits: a few hundred to a few thousand. */
const MAX_ENTRIES = 10_000;
/**
 * An entry's life however quiet the notifications are: a bound on what a change that sends none
 * (a direct SQL edit, a writer that forgot pg_notify) can leave stale.
 */
export const READY_VOICE_MAX_AGE_MS = 5_000;

const LISTEN_RETRY_MS = 5_000;

/** Taken before a read from Postgres; a fill with it is refused if anything changed meanwhile. */
export type ReadTicket = number | null;

/**
 * Ready voices as last read from Postgres, so repeated activations of a voice whose lease has time
 * to run answer without a query. An entry goes as soon as the voice changes: at once for changes
 * made by this replica (the repository's transition observers), and on the voice_status
 * notification for changes made by any replica (the notification is sent in the same transaction
 * as the change). While the notification connection is down nothing is cached, and whatever was is
 * dropped, since changes may go unheard.
 *
 * A fill races the notifications: a read that started before a change may return after its
 * notification was handled. Every invalidation therefore bumps a generation, and a read's result
 * is cached only if no invalidation (of any voice) happened since the read began.
 */
@Injectable()
export class ReadyVoiceCache implements OnModuleInit {
  private readonly logger = new Logger(ReadyVoiceCache.name);
  /** Each entry with its deadline, checked against the caller's clock (one Date.now() a request). */
  private readonly entries = new LRUCache<string, { voice: Voice; until: number }>({
    max: MAX_ENTRIES,
  });
  private generation = 0;
  private nextListenAttempt = 0;

  constructor(
    private readonly listener: VoiceEventsListener,
    private readonly voices: VoiceRepository,
  ) {}

  onModuleInit(): void {
    this.voices.onTransition(({ voice }) => this.invalidate(voice.id));
    this.listener.observe((voiceId) =>
      voiceId === null ? this.clear() : this.invalidate(voiceId),
    );
  }

  /**
   * The ready voice `id` as read at most READY_VOICE_MAX_AGE_MS ago, if it belongs to `userId`;
   * anything else (unknown, another user's, no longer ready) is for Postgres to answer.
   */
  get(id: string, userId: string, now: number): Voice | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.until <= now) {
      this.entries.delete(id);
      return undefined;
    }
    const { voice } = entry;
    return voice.userId === userId && voice.status === 'ready' ? voice : undefined;
  }

  /** Call before reading the voice whose result may be cached; null while nothing may be. */
  ticket(now: number): ReadTicket {
    if (this.listener.listening) return this.generation;
    // Opened in the background: this read goes uncached, later ones are cached once it is up.
    if (now >= this.nextListenAttempt) {
      this.nextListenAttempt = now + LISTEN_RETRY_MS;
      this.listener.listen().catch((err: unknown) => {
        this.logger.warn({ err }, 'voice notifications unavailable; activations are not cached');
      });
    }
    return null;
  }

  /** Caches a ready voice read with `ticket`, unless something changed since the ticket. */
  fill(voice: Voice, ticket: ReadTicket, now: number): void {
    if (ticket === null || ticket !== this.generation || !this.listener.listening) return;
    if (voice.status !== 'ready') return;
    this.entries.set(voice.id, { voice, until: now + READY_VOICE_MAX_AGE_MS });
  }

  private invalidate(voiceId: string): void {
    this.generation++;
    this.entries.delete(voiceId);
  }

  private clear(): void {
    this.generation++;
    this.entries.clear();
  }
}
