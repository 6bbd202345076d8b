import fc from 'fast-check';
import type { CloneAllowance } from './clone-budget';
import {
  decide,
  idleVictims,
  isEvictable,
  POLICY_NAMES,
  type HeldVoice,
  type PolicySnapshot,
} from './reclaim-policy';
import { held, MIN, NOW, RULES, snapshot, UNLIMITED, waiter } from './testing/policy-fixtures';

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
