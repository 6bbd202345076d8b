/**
 * A bounded in-process cache whose entries also expire: the least recently used entry goes when
 * it is full, and an entry past its own deadline is never returned. Map keeps insertion order, so
 * re-inserting on a hit makes the first key the least recently used one.
 *
 * Time is passed in by the caller (milliseconds since the epoch), so one Date.now() serves a
 * whole request and tests need no fake clock.
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

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
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value` until `expiresAt` (not stored at all when that is not in the future). */
  set(key: K, value: V, expiresAt: number, now: number): void {
    this.entries.delete(key);
    if (expiresAt <= now) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
