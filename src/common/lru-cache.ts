interface Entry<V> {
  value: V;
  expiresAt: number;
  /** Read since it last reached the front of the eviction queue (see set). */
  used: boolean;
}

/**
 * A bounded in-process cache whose entries also expire: when it is full, an entry not read
 * recently goes (CLOCK, an approximation of least-recently-used), and an entry past its own
 * deadline is never returned. A read only flags its entry rather than moving it to the back of
 * the Map, since deleting and re-inserting on every hit costs more than the lookup on the hot
 * path these caches serve.
 *
 * Time is passed in by the caller (milliseconds since the epoch), so one Date.now() serves a
 * whole request and tests need no fake clock.
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, Entry<V>>();

  constructor(private readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new Error('an LruCache holds at least one entry');
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    entry.used = true;
    return entry.value;
  }

  /** Stores `value` until `expiresAt` (not stored at all when that is not in the future). */
  set(key: K, value: V, expiresAt: number, now: number): void {
    this.entries.delete(key);
    if (expiresAt <= now) return;
    if (this.entries.size >= this.maxEntries) this.evictOne(now);
    this.entries.set(key, { value, expiresAt, used: false });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * From the oldest insertion on: an expired or unread entry goes; a read one gets a second
   * chance at the back of the queue, unflagged. Ends within two passes over the entries.
   */
  private evictOne(now: number): void {
    for (const [key, entry] of this.entries) {
      this.entries.delete(key);
      if (entry.expiresAt > now && entry.used) {
        entry.used = false;
        this.entries.set(key, entry);
        continue;
      }
      return;
    }
  }
}
