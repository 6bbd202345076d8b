import { LruCache } from './lru-cache';

describe('LruCache', () => {
  it('returns an entry until its own deadline, never after', () => {
    const cache = new LruCache<string, number>(10);
    cache.set('a', 1, 1_000, 0);
    expect(cache.get('a', 999)).toBe(1);
    expect(cache.get('a', 1_000)).toBeUndefined();
    cache.set('b', 2, 500, 500);
    expect(cache.get('b', 500)).toBeUndefined();
  });

  it('stays within its bound, keeping the entries read since they were stored', () => {
    const cache = new LruCache<number, number>(3);
    for (const k of [1, 2, 3]) cache.set(k, k, 10_000, 0);
    cache.get(1, 1);
    cache.set(4, 4, 10_000, 2);
    expect(cache.size).toBe(3);
    expect(cache.get(1, 3)).toBe(1);
    expect(cache.get(2, 3)).toBeUndefined();
    expect(cache.get(4, 3)).toBe(4);
  });
});
