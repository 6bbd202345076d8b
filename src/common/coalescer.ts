import { withTimeout } from './timeout';

/**
 * Shares one run per key among concurrent callers (a burst of dispatch requests for one provider
 * becomes one claim), with a bound: a run that has not settled after `timeoutMs` is forgotten, so
 * the next caller starts a fresh one instead of joining a run wedged on a dead connection or a
 * promise that never settles (ARCHITECTURE invariant 10). The forgotten run may still finish; the
 * work it does is compare-and-set in Postgres, so an overlap with its successor is harmless.
 */
export class Coalescer<K> {
  private readonly running = new Map<K, { run: Promise<number>; bounded: Promise<number> }>();

  constructor(
    private readonly timeoutMs: number,
    private readonly what: string,
  ) {}

  /** The run in progress for `key`, if any. */
  current(key: K): Promise<number> | undefined {
    return this.running.get(key)?.bounded;
  }

  /** Joins the run in progress for `key`, or starts `fn` as the new one. */
  run(key: K, fn: () => Promise<number>): Promise<number> {
    const current = this.running.get(key);
    if (current) return current.bounded;
    const run = fn();
    const entry = {
      run,
      bounded: withTimeout(run, this.timeoutMs, `${this.what} ${String(key)}`).finally(() => {
        // Only this run's own entry: a successor may already have taken the key.
        if (this.running.get(key) === entry) this.running.delete(key);
      }),
    };
    this.running.set(key, entry);
    return entry.bounded;
  }
}
