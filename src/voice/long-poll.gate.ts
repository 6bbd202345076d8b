import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/config.module';

/**
 * Caps the activations of this replica that wait for `ready` (waitSeconds) at once, overall and
 * per user. Each wait holds an open connection, a timer and a listener entry for up to 30 s; one
 * client opening thousands would hold them all. A request over a cap is not refused: it is
 * answered at once with the voice's current state, as waitSeconds=0 would be, and may poll again.
 */
@Injectable()
export class LongPollGate {
  private total = 0;
  private readonly perUser = new Map<string, number>();

  constructor(private readonly config: AppConfig) {}

  /** A release function when `userId` may wait now (call it once the wait ends), else null. */
  tryEnter(userId: string): (() => void) | null {
    const mine = this.perUser.get(userId) ?? 0;
    if (this.total >= this.config.LONG_POLL_MAX_PER_REPLICA) return null;
    if (mine >= this.config.LONG_POLL_MAX_PER_USER) return null;
    this.total++;
    this.perUser.set(userId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perUser.get(userId) ?? 1) - 1;
      if (left > 0) this.perUser.set(userId, left);
      else this.perUser.delete(userId);
    };
  }

  /** Activations waiting now on this replica. */
  get waiting(): number {
    return this.total;
  }
}
