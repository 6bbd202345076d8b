import {
  decide,
  POLICY_NAMES,
  serviceRank,
  DEFAULT_SERVICE_TUNING,
  type PolicySnapshot,
} from './reclaim-policy';
import { firstUse, recordUse } from './voice-usage';
import { held, MIN, NOW, snapshot, UNLIMITED, waiter } from './testing/policy-fixtures';

describe('decide', () => {
  const cases: {
    name: string;
    snap: Partial<PolicySnapshot>;
    evict: string[];
    clone: string[];
    wakeAt?: number | null;
  }[] = [
    { name: 'nothing waits: nothing to do', snap: { held: [held('a', 60)] }, evict: [], clone: [] },
    {
      name: 'a free slot: clone without evicting',
      snap: { held: [held('a', 60)], waiting: [waiter('w')] },
      evict: [],
      clone: ['w'],
    },
    {
      name: 'full: LRU victim among idle voices',
      snap: { held: [held('a', 60), held('b', 90)], waiting: [waiter('w')] },
      evict: ['b'],
      clone: ['w'],
    },
    {
      name: 'a leased voice is never the victim, even the least recently used',
      snap: {
        held: [held('a', 60), held('b', 90, { leaseExpiresAt: NOW + MIN })],
        waiting: [waiter('w')],
      },
      evict: ['a'],
      clone: ['w'],
    },
    {
      name: 'a lease ending exactly now still protects (strictly after, as the SQL)',
      snap: {
        slots: 1,
        held: [held('a', 60, { leaseExpiresAt: NOW })],
        waiting: [waiter('w')],
      },
      evict: [],
      clone: [],
      wakeAt: NOW + 1,
    },
    {
      name: 'minimum residency protects a voice that just became ready',
      snap: {
        slots: 1,
        held: [held('a', 60, { readyAt: NOW - MIN })],
        waiting: [waiter('w')],
      },
      evict: [],
      clone: [],
      wakeAt: NOW + MIN + 1,
    },
    {
      name: 'the idle threshold protects a voice used 5 minutes ago',
      snap: { slots: 1, held: [held('a', 5)], waiting: [waiter('w')] },
      evict: [],
      clone: [],
      wakeAt: NOW + 5 * MIN + 1,
    },
    {
      name: 'every slot allocating: wait for an event, no timer',
      snap: { slots: 1, busy: 1, waiting: [waiter('w')] },
      evict: [],
      clone: [],
      wakeAt: null,
    },
    {
      name: 'one victim per clone, no more than the victims allowed',
      snap: {
        held: [held('a', 60), held('b', 90)],
        waiting: [waiter('w1'), waiter('w2'), waiter('w3')],
      },
      evict: ['b', 'a'],
      clone: ['w1', 'w2'],
    },
    {
      name: 'a re-clone the pacing refuses is passed over; a first clone behind it goes',
      snap: {
        held: [held('a', 60), held('b', 90)],
        waiting: [waiter('r', true), waiter('f')],
        allowance: { ...UNLIMITED, first: 5, reclone: 0, recloneAllowedAt: NOW + 3600_000 },
      },
      evict: ['b'],
      clone: ['f'],
      wakeAt: NOW + 3600_000,
    },
    {
      name: 'no eviction when the budget lets nothing out (invariant 9)',
      snap: {
        held: [held('a', 60), held('b', 90)],
        waiting: [waiter('f')],
        allowance: { ...UNLIMITED, first: 0, reclone: 0, exhausted: true, resetsAt: NOW + 5000 },
      },
      evict: [],
      clone: [],
      wakeAt: NOW + 5000,
    },
    {
      name: 'a first clone uses up what re-clones may use too',
      snap: {
        slots: 4,
        waiting: [waiter('f'), waiter('r', true)],
        allowance: { ...UNLIMITED, first: 3, reclone: 1 },
      },
      evict: [],
      clone: ['f'],
    },
  ];
  for (const policy of POLICY_NAMES) {
    it.each(cases)(`${policy}: $name`, ({ snap, evict, clone, wakeAt }) => {
      const d = decide(policy, snapshot(snap));
      // Victim order differs by policy; protections, counts and the budget do not.
      if (policy === 'lru') expect(d.evict).toEqual(evict);
      else expect([...d.evict].sort()).toEqual([...evict].sort().slice(0, d.evict.length));
      expect(d.evict).toHaveLength(evict.length);
      expect(d.clone).toEqual(clone);
      if (wakeAt !== undefined) expect(d.wakeAt).toBe(wakeAt);
    });
  }

  it('belady evicts the furthest next use, never-again voices first', () => {
    const s = snapshot({
      slots: 3,
      held: [held('a', 60, { nextUse: 50 }), held('b', 60, { nextUse: 70 }), held('c', 60)],
      waiting: [waiter('w1'), waiter('w2')],
      rules: { minIdleMs: 0, minResidencyMs: 0 },
    });
    expect(decide('belady', s).evict).toEqual(['c', 'b']);
  });

  it('service keeps a voice of frequent sessions over a more recent newcomer', () => {
    const day = 86_400_000;
    let regular = firstUse(NOW - 20 * day);
    for (let d = 19; d >= 1; d--) regular = recordUse(regular, NOW - d * day);
    const newcomer = firstUse(NOW - 2 * 3600_000);
    const s = snapshot({
      slots: 2,
      held: [
        held('regular', 24 * 60, { usage: regular }),
        held('newcomer', 120, { usage: newcomer }),
      ],
      waiting: [waiter('w')],
    });
    expect(decide('lru', s).evict).toEqual(['regular']);
    expect(decide('service', s).evict).toEqual(['newcomer']);
  });

  it('service keeps a voice in session (used a minute ago) over any voice out of session', () => {
    const inSession = held('talking', 1);
    const idle = held('idle', 20);
    for (const v of [inSession, idle])
      expect(serviceRank(v, NOW, DEFAULT_SERVICE_TUNING)).toBeGreaterThanOrEqual(0);
    expect(serviceRank(inSession, NOW, DEFAULT_SERVICE_TUNING)).toBeLessThan(
      serviceRank(idle, NOW, DEFAULT_SERVICE_TUNING),
    );
  });
});
