import fc from 'fast-check';
import { UNLIMITED_CLONES, type CloneAllowance } from './clone-budget';
import {
  decide,
  idleVictims,
  isEvictable,
  POLICY_NAMES,
  serviceRank,
  DEFAULT_SERVICE_TUNING,
  type HeldVoice,
  type PolicySnapshot,
  type ProtectionRules,
  type WaitingVoice,
} from './reclaim-policy';
import { firstUse, recordUse } from './voice-usage';

const NOW = 10_000_000_000;
const MIN = 60_000;
const RULES: ProtectionRules = { minIdleMs: 10 * MIN, minResidencyMs: 2 * MIN };
const UNLIMITED = UNLIMITED_CLONES;

/** A ready voice idle `idleMin` minutes, resident for a day, no lease, unless told otherwise. */
function held(id: string, idleMin: number, extra: Partial<HeldVoice> = {}): HeldVoice {
  const lastUsedAt = NOW - idleMin * MIN;
  return {
    id,
    usage: { ...firstUse(lastUsedAt - 86_400_000), lastUsedAt },
    lastUsedAt,
    leaseExpiresAt: null,
    readyAt: NOW - 86_400_000,
    useOrder: -idleMin,
    ...extra,
  };
}

const waiter = (id: string, clonedBefore = false): WaitingVoice => ({
  id,
  clonedBefore,
  queuedAt: NOW,
});

function snapshot(over: Partial<PolicySnapshot>): PolicySnapshot {
  return {
    now: NOW,
    slots: 2,
    held: [],
    busy: 0,
    waiting: [],
    allowance: UNLIMITED,
    rules: RULES,
    ...over,
  };
}

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

describe('decide: properties', () => {
  const arbHeld = fc
    .record({
      idleMin: fc.integer({ min: 0, max: 600 }),
      leaseMin: fc.option(fc.integer({ min: -30, max: 30 }), { nil: null }),
      residentMin: fc.integer({ min: 0, max: 600 }),
      sessions: fc.integer({ min: 1, max: 50 }),
      ageDays: fc.integer({ min: 0, max: 60 }),
      nextUse: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
    })
    .map((r) => ({
      ...r,
      build: (id: string): HeldVoice => {
        const lastUsedAt = NOW - r.idleMin * MIN;
        return {
          id,
          usage: {
            uses: r.sessions * 3,
            sessions: r.sessions,
            firstUsedAt: lastUsedAt - r.ageDays * 86_400_000,
            lastUsedAt,
          },
          lastUsedAt,
          leaseExpiresAt: r.leaseMin === null ? null : NOW + r.leaseMin * MIN,
          readyAt: NOW - r.residentMin * MIN,
          useOrder: 0,
          nextUse: r.nextUse,
        };
      },
    }));
  const arbSnapshot = fc
    .record({
      policy: fc.constantFrom(...POLICY_NAMES),
      held: fc.array(arbHeld, { maxLength: 12 }),
      extraSlots: fc.integer({ min: 0, max: 3 }),
      busy: fc.integer({ min: 0, max: 2 }),
      waiting: fc.array(fc.boolean(), { maxLength: 8 }),
      first: fc.integer({ min: 0, max: 6 }),
      recloneShare: fc.integer({ min: 0, max: 6 }),
      limited: fc.boolean(),
    })
    .map((r) => {
      const first = r.limited ? r.first : Infinity;
      const allowance: CloneAllowance = {
        ...UNLIMITED,
        first,
        reclone: r.limited ? Math.min(first, r.recloneShare) : Infinity,
        exhausted: first === 0,
      };
      const snap: PolicySnapshot = snapshot({
        slots: r.held.length + r.busy + r.extraSlots,
        held: r.held.map((h, i) => h.build(`h${i}`)),
        busy: r.busy,
        waiting: r.waiting.map((clonedBefore, i) => waiter(`w${i}`, clonedBefore)),
        allowance,
      });
      return { policy: r.policy, snap };
    });

  it('never evicts a protected voice, never more than it clones, never past the budget', () => {
    fc.assert(
      fc.property(arbSnapshot, ({ policy, snap }) => {
        const d = decide(policy, snap);
        const byId = new Map(snap.held.map((h) => [h.id, h]));
        for (const id of d.evict) {
          const h = byId.get(id);
          expect(h).toBeDefined();
          expect(isEvictable(h as HeldVoice, snap.rules, snap.now)).toBe(true);
          expect(h?.leaseExpiresAt === null || (h?.leaseExpiresAt ?? 0) < snap.now).toBe(true);
        }
        expect(new Set(d.evict).size).toBe(d.evict.length);
        expect(new Set(d.clone).size).toBe(d.clone.length);
        // Slots: what is held after the decision fits.
        expect(snap.held.length - d.evict.length + snap.busy + d.clone.length).toBeLessThanOrEqual(
          snap.slots,
        );
        // Evictions only for clones that go out now.
        expect(d.evict.length).toBeLessThanOrEqual(d.clone.length);
        // The budget: clones of both kinds within `first`, re-clones within `reclone`.
        const waiting = new Map(snap.waiting.map((w) => [w.id, w]));
        const reclones = d.clone.filter((id) => waiting.get(id)?.clonedBefore).length;
        expect(d.clone.length).toBeLessThanOrEqual(snap.allowance.first);
        expect(reclones).toBeLessThanOrEqual(snap.allowance.reclone);
        // Deterministic: the same snapshot gives the same decision.
        expect(decide(policy, snap)).toEqual(d);
      }),
      { numRuns: 500 },
    );
  });

  it('clones whatever fits when nothing protects and the budget allows', () => {
    fc.assert(
      fc.property(arbSnapshot, ({ policy, snap }) => {
        const open: PolicySnapshot = {
          ...snap,
          rules: { minIdleMs: 0, minResidencyMs: 0 },
          held: snap.held.map((h) => ({ ...h, leaseExpiresAt: null })),
          allowance: UNLIMITED,
        };
        const d = decide(policy, open);
        const room = open.slots - open.busy;
        expect(d.clone.length).toBe(Math.min(open.waiting.length, room));
      }),
      { numRuns: 300 },
    );
  });
});

describe('idleVictims (the cost saver)', () => {
  const HOUR = 60 * MIN;
  it('takes only voices idle past the threshold, longest idle first, up to the maximum', () => {
    const voices = [held('a', 90), held('b', 30), held('c', 180), held('d', 61)];
    expect(idleVictims(voices, RULES, HOUR, NOW, 10)).toEqual(['c', 'a', 'd']);
    expect(idleVictims(voices, RULES, HOUR, NOW, 2)).toEqual(['c', 'a']);
  });

  it('keeps the protections: a lease, the minimum residency, the backlog idle threshold', () => {
    const voices = [
      held('leased', 300, { leaseExpiresAt: NOW + MIN }),
      held('new', 300, { readyAt: NOW - MIN }),
      held('free', 300),
    ];
    expect(idleVictims(voices, RULES, HOUR, NOW, 10)).toEqual(['free']);
    // A threshold below the backlog's own idle rule does not lower it.
    expect(idleVictims([held('x', 5)], RULES, MIN, NOW, 10)).toEqual([]);
  });
});
