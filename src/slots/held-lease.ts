/**
 * The allocation lease as this process last had it granted, on the monotonic clock (which keeps
 * running while the process is frozen). Taken before the statement that grants it, so it never
 * ends later here than in Postgres.
 */
export class HeldLease {
  private validUntil: number;

  constructor(private readonly seconds: number) {
    this.validUntil = performance.now() + seconds * 1000;
  }

  /** Call with the time taken just before the renewal that succeeded. */
  renewed(requestedAt: number): void {
    this.validUntil = requestedAt + this.seconds * 1000;
  }

  /** Safely ours for a while yet: a tenth of the lease (at most 5 s) kept as a margin. */
  get comfortable(): boolean {
    return performance.now() < this.validUntil - Math.min(5_000, this.seconds * 100);
  }
}
