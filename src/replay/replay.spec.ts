import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { POLICY_NAMES } from '../policy/reclaim-policy';
import { replay } from './replay';
import { nextUseIndices, parseTrace, type Trace } from './trace';

const ROOT = resolve(__dirname, '../..');
const FIXTURES = join(ROOT, 'test/fixtures/traces');
const fixture = (name: string): Trace => parseTrace(readFileSync(join(FIXTURES, name), 'utf8'));

/** The reference simulator (test/reference/cache_sim.py), written apart from this replay. */
function reference(file: string, slots: number[]): Record<string, { lru: number; belady: number }> {
  const out = execFileSync(
    'python3',
    [join(ROOT, 'test/reference/cache_sim.py'), join(FIXTURES, file), ...slots.map(String)],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(out) as Record<string, { lru: number; belady: number }>;
}

/** A second, deliberately naive TypeScript reference: O(n·k), arrays only, forward scans. */
function naiveHits(keys: readonly number[], slots: number, policy: 'lru' | 'belady'): number {
  const cache: number[] = [];
  const lastUse: number[] = [];
  let hits = 0;
  for (let i = 0; i < keys.length; i++) {
    const at = cache.indexOf(keys[i]);
    if (at >= 0) {
      hits++;
      lastUse[at] = i;
      continue;
    }
    if (cache.length >= slots) {
      let victim = 0;
      let worst = -Infinity;
      for (let j = 0; j < cache.length; j++) {
        let score: number;
        if (policy === 'lru') score = -lastUse[j];
        else {
          score = Infinity;
          for (let f = i + 1; f < keys.length; f++)
            if (keys[f] === cache[j]) {
              score = f;
              break;
            }
        }
        if (score > worst) {
          worst = score;
          victim = j;
        }
      }
      cache.splice(victim, 1);
      lastUse.splice(victim, 1);
    }
    cache.push(keys[i]);
    lastUse.push(i);
  }
  return hits;
}

describe('replay --pure agrees exactly with textbook LRU and Belady', () => {
  const cases: [string, number[]][] = [
    ['tiny.csv', [1, 2, 3, 4]],
    ['small.csv', [1, 10, 30, 160]],
    ['medium.csv', [10, 30, 160]],
  ];
  it.each(cases)('%s: hits equal the Python reference at %j slots', (file, slots) => {
    const trace = fixture(file);
    const expected = reference(file, slots);
    for (const s of slots) {
      expect(replay(trace, { policy: 'lru', slots: s, pure: true }).hits).toBe(expected[s].lru);
      expect(replay(trace, { policy: 'belady', slots: s, pure: true }).hits).toBe(
        expected[s].belady,
      );
    }
  });

  it('hits equal the naive O(n·k) TypeScript reference on a slice of small.csv', () => {
    const trace = fixture('small.csv');
    const keys = Array.from(trace.voice.slice(0, 4000));
    const head = parseTrace(
      readFileSync(join(FIXTURES, 'small.csv'), 'utf8').split('\n').slice(0, 4001).join('\n'),
    );
    for (const s of [2, 10, 30]) {
      expect(replay(head, { policy: 'lru', slots: s, pure: true }).hits).toBe(
        naiveHits(keys, s, 'lru'),
      );
      expect(replay(head, { policy: 'belady', slots: s, pure: true }).hits).toBe(
        naiveHits(keys, s, 'belady'),
      );
    }
  });

  it('belady never loses; every miss clones and every clone beyond the slots evicts', () => {
    const trace = fixture('small.csv');
    for (const slots of [10, 30]) {
      const r = Object.fromEntries(
        POLICY_NAMES.map((p) => [p, replay(trace, { policy: p, slots, pure: true })]),
      );
      expect(r.belady.hits).toBeGreaterThanOrEqual(r.lru.hits);
      expect(r.belady.hits).toBeGreaterThanOrEqual(r.service.hits);
      for (const p of POLICY_NAMES) {
        expect(r[p].clones).toBe(r[p].misses);
        expect(r[p].reclaims).toBe(r[p].clones - slots);
      }
    }
  });
});

describe('replay with the service rules', () => {
  const csv = (rows: string[]): Trace => parseTrace(['time,user,voice,hold', ...rows].join('\n'));

  it('a miss waits for the clone; later activations hit', () => {
    const r = replay(csv(['0,u,a,0', '1,u,a,0', '10,u,a,0']), {
      policy: 'lru',
      slots: 1,
      cloneSeconds: 5,
    });
    // 0 misses (clone until 5), 1 misses (waits for the same clone, no second clone), 10 hits.
    expect(r).toMatchObject({ requests: 3, hits: 1, misses: 2, clones: 1, reclaims: 0 });
    expect(r.waitP99Seconds).toBe(5);
  });

  it('a voice under its lease (extended by hold) is not reclaimed: the newcomer waits', () => {
    // a holds the slot until 0 + 5 (clone) + 1000 (hold) + 300 (lease); b arrives at 100.
    const r = replay(csv(['0,u,a,1000', '100,v,b,0']), {
      policy: 'lru',
      slots: 1,
      cloneSeconds: 5,
      minIdleSeconds: 0,
      minResidencySeconds: 0,
    });
    expect(r.clones).toBe(2);
    expect(r.reclaims).toBe(1);
    // b waits until a's lease ends (1305 s, reclaimed a millisecond after), then its clone.
    expect(r.waitP99Seconds).toBeCloseTo(1305 - 100 + 5, 2);
  });

  it('the idle threshold and minimum residency hold a voice longer than its lease', () => {
    const r = replay(csv(['0,u,a,0', '10,v,b,0']), {
      policy: 'lru',
      slots: 1,
      cloneSeconds: 0,
      leaseSeconds: 1,
      minIdleSeconds: 600,
      minResidencySeconds: 120,
    });
    // a was last used at 0 (ready at once): idle threshold ends at 600.
    expect(r.waitP99Seconds).toBeCloseTo(590, 2);
  });

  it('the budget: a re-clone waits for the pacing; first clones go', () => {
    // Two slots' worth of voices cycling through one slot with a budget of 10 a day.
    const rows: string[] = [];
    for (let i = 0; i < 40; i++) rows.push(`${i * 1000},u,${i % 2 ? 'a' : 'b'},0`);
    const r = replay(csv(rows), {
      policy: 'lru',
      slots: 1,
      budget: 10,
      periodDays: 1,
      cloneSeconds: 0,
      minIdleSeconds: 0,
      minResidencySeconds: 0,
      leaseSeconds: 0,
    });
    // 2 first clones, then re-clones paced: never more than the budget within the day.
    expect(r.clones).toBeLessThanOrEqual(10);
    expect(r.firstClones).toBe(2);
    expect(r.budgetExhaustedAt).toBeNull();
  });

  it('is deterministic', () => {
    const trace = fixture('small.csv');
    for (const policy of POLICY_NAMES) {
      const a = replay(trace, { policy, slots: 10, budget: 95 });
      const b = replay(trace, { policy, slots: 10, budget: 95 });
      expect({ ...a, durationSeconds: 0 }).toEqual({ ...b, durationSeconds: 0 });
    }
  });
});

describe('nextUseIndices', () => {
  it('points at the next row of the same voice', () => {
    const t = parseTrace('time,user,voice\n0,u,a\n1,u,b\n2,u,a\n3,u,b\n4,u,c\n');
    expect(Array.from(nextUseIndices(t))).toEqual([2, 3, Infinity, Infinity, Infinity]);
  });
});
