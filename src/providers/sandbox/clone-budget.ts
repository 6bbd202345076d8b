import type { CloneBudgetPatch } from './control-schemas';
import type { SandboxCloneBudgetView } from './sandbox.types';

/** ElevenLabs' add/edit counter, which returns to 0 at each reset, as a billing cycle ends. */
export class CloneBudget {
  private used = 0;
  /** When the counter next returns to 0 (epoch ms). */
  private resetAtMs: number;

  constructor(
    private limit: number | null,
    private periodMs: number,
  ) {
    this.resetAtMs = Date.now() + periodMs;
  }

  private roll(now = Date.now()): void {
    while (now >= this.resetAtMs) {
      this.used = 0;
      this.resetAtMs += this.periodMs;
    }
  }

  view(): SandboxCloneBudgetView {
    this.roll();
    return {
      limit: this.limit,
      used: this.used,
      resetsAt: new Date(this.resetAtMs).toISOString(),
      periodSeconds: this.periodMs / 1000,
    };
  }

  /** Spends one add/edit operation; false (nothing spent) when the budget is used up. */
  spend(): boolean {
    this.roll();
    if (this.limit !== null && this.used >= this.limit) return false;
    this.used++;
    return true;
  }

  patch(b: CloneBudgetPatch): void {
    this.roll();
    if (b.periodSeconds !== undefined) this.periodMs = b.periodSeconds * 1000;
    if (b.limit !== undefined) this.limit = b.limit;
    if (b.used !== undefined) this.used = b.used;
    if (b.resetInSeconds !== undefined) this.resetAtMs = Date.now() + b.resetInSeconds * 1000;
  }
}
