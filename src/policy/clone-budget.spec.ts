import fc from 'fast-check';
import { cloneAllowance, mayClone, reserveOf, type CloneBudgetState } from './clone-budget';

const DAY = 86_400_000;
const settings = { reserveShare: 0.1, periodSeconds: 30 * 86_400, burstShare: 0.1 };
const T = Date.parse('2026-12-01T00:00:00Z');
/** A period of 30 days that began `days` ago. */
const state = (spent: number, days: number, over: Partial<CloneBudgetState> = {}) => ({
  limit: 95,
  spent,
  resetsAt: T + (30 - days) * DAY,
  exhaustedUntil: null,
  ...over,
});

describe('cloneAllowance', () => {
  it('without a budget lets everything out', () => {
    const a = cloneAllowance(
      { limit: null, spent: 7, resetsAt: null, exhaustedUntil: null },
      settings,
      T,
    );
    expect(a).toMatchObject({
      first: Infinity,
      reclone: Infinity,
      exhausted: false,
      remaining: null,
    });
  });

  it.each([
    // spent, days into the period, first clones allowed, re-clones allowed
    [0, 0, 95, 8], // the burst: 10% of the 85 re-clones may use
    [8, 0, 87, 0],
    [8, 3, 87, 8], // 3 days in: 8.5 + 76.5 * 0.1 = 16
    [40, 15, 55, 6], // half way: 8.5 + 38.25 = 46
    [84, 29.99, 11, 0],
    [85, 30, 10, 0], // the reserve: re-clones never use the last 10
    [94, 30, 1, 0],
    [95, 10, 0, 0],
    [120, 10, 0, 0], // counted past the budget (a stale read): nothing, not a negative
  ])('spent %i after %f days: %i first clones, %i re-clones', (spent, days, first, reclone) => {
    const a = cloneAllowance(state(spent, days), settings, T);
    expect({ first: a.first, reclone: a.reclone }).toEqual({ first, reclone });
    expect(a.exhausted).toBe(first === 0);
  });

  it('refuses everything until the reset once the provider said the budget is spent', () => {
    const s = state(10, 5, { exhaustedUntil: T + 1000 });
    expect(cloneAllowance(s, settings, T)).toMatchObject({ first: 0, reclone: 0, exhausted: true });
    expect(cloneAllowance(s, settings, T + 1000).exhausted).toBe(false);
  });

  it('says when the pacing next lets a re-clone out, and that moment does', () => {
    const s = state(20, 1);
    const a = cloneAllowance(s, settings, T);
    expect(a.reclone).toBe(0);
    expect(a.recloneAllowedAt).not.toBeNull();
    const at = a.recloneAllowedAt ?? 0;
    expect(cloneAllowance(s, settings, at).reclone).toBe(1);
    expect(cloneAllowance(s, settings, at - 60_000).reclone).toBe(0);
  });

  it('without a known reset keeps the reserve but does not pace', () => {
    const a = cloneAllowance(state(50, 0, { resetsAt: null }), settings, T);
    expect(a).toMatchObject({ first: 45, reclone: 35 });
  });

  it('tells first clones from re-clones', () => {
    const a = cloneAllowance(state(8, 0), settings, T);
    expect(mayClone(a, false)).toBe(true);
    expect(mayClone(a, true)).toBe(false);
  });

  it('never lets out more than the budget, nor re-clones into the reserve (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.double({ min: 0, max: 40, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (limit, spent, days, reserveShare) => {
          const s = { ...settings, reserveShare };
          const a = cloneAllowance(state(spent, days, { limit }), s, T);
          expect(a.first).toBe(Math.max(0, limit - spent));
          expect(a.reclone).toBeLessThanOrEqual(a.first);
          expect(spent + a.reclone).toBeLessThanOrEqual(
            Math.max(spent, limit - reserveOf(limit, reserveShare)),
          );
          // Deterministic: the same input, the same answer.
          expect(cloneAllowance(state(spent, days, { limit }), s, T)).toEqual(a);
        },
      ),
    );
  });

  it('spreads re-clones over the period under a standing backlog (the budget lasts to the reset)', () => {
    // Every hour a backlog asks for as many re-clones as allowed.
    let spent = 0;
    let exhaustedAtDay: number | null = null;
    for (let h = 0; h <= 30 * 24; h++) {
      const now = T - 30 * DAY + h * 3_600_000;
      const a = cloneAllowance(
        { limit: 95, spent, resetsAt: T, exhaustedUntil: null },
        settings,
        now,
      );
      spent += a.reclone;
      if (exhaustedAtDay === null && spent >= 85) exhaustedAtDay = h / 24;
    }
    expect(spent).toBe(85);
    expect(exhaustedAtDay).toBeGreaterThan(29);
  });
});
