import { cloneAllowance } from '../src/policy/clone-budget';
import {
  budgetState,
  ProviderAccountsRepository,
} from '../src/providers/provider-accounts.repository';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import { QUEUE_INFO } from './support/slot-pool';
import type { DataSource } from 'typeorm';
import type { SlotsRepository } from '../src/slots/slots.repository';
import type { ClaimRepository } from '../src/slots/claim.repository';
import { useSlotPool } from './support/slot-pool';

/** Claims and reclaims on the real Postgres under a provider's clone budget. */
describe('slot pool on Postgres', () => {
  const { pool, claim, queueVoice } = useSlotPool();
  let ds: DataSource;
  let slots: SlotsRepository;
  let claims: ClaimRepository;
  beforeAll(() => ({ ds, slots, claims } = pool));

  describe('with a clone budget', () => {
    const SETTINGS = QUEUE_INFO.budget;
    const accounts = () => new ProviderAccountsRepository(ds);
    const claimWith = (budget: { expectedTotal: string; first: number; reclone: number }) =>
      claims.claimBatch('elevenlabs', {
        max: 50,
        allocationLeaseSeconds: 120,
        breakerCooldownSeconds: 30,
        budget,
      });
    /** Like a dispatcher: read the account, decide with the pure allowance, claim. */
    async function dispatchOnce() {
      const account = await accounts().budget('elevenlabs');
      const a = cloneAllowance(budgetState(account), SETTINGS, Date.now());
      return claimWith({ expectedTotal: account.clonesTotal, first: a.first, reclone: a.reclone });
    }

    it('never claims past the budget when dispatchers race with the same reading', async () => {
      await slots.setLimits('elevenlabs', { configuredLimit: 50 });
      await accounts().configure('elevenlabs', 10, SETTINGS.periodSeconds);
      await ds.query(`UPDATE provider_accounts SET budget_used = 7 WHERE provider = 'elevenlabs'`);
      for (let i = 0; i < 20; i++) await queueVoice(`user-${i}`);
      // Eight replicas read the same account (3 clones left) before any of them claims.
      const account = await accounts().budget('elevenlabs');
      const a = cloneAllowance(budgetState(account), SETTINGS, Date.now());
      expect(a.first).toBe(3);
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          claimWith({ expectedTotal: account.clonesTotal, first: a.first, reclone: a.reclone }),
        ),
      );
      const claimed = results.flatMap((r) => r.claimed);
      expect(claimed).toHaveLength(3);
      expect(results.filter((r) => r.stale)).toHaveLength(7);
      // Deciding again from a fresh reading: spent, nothing more, and the rest is held back.
      const again = await Promise.all(Array.from({ length: 4 }, () => dispatchOnce()));
      expect(again.flatMap((r) => r.claimed)).toHaveLength(0);
      expect(again.some((r) => r.heldBackByBudget > 0)).toBe(true);
      expect(budgetState(await accounts().budget('elevenlabs')).spent).toBe(10);
    });

    it('passes over voices cloned before while re-clones are paced, and takes first clones', async () => {
      await slots.setLimits('elevenlabs', { configuredLimit: 10 });
      const before = [await queueVoice('a'), await queueVoice('b')];
      const fresh = await queueVoice('c');
      await ds.query(`UPDATE voices SET ready_at = now() - interval '1 day' WHERE id = ANY($1)`, [
        before,
      ]);
      const r = await claimWith({ expectedTotal: '0', first: 5, reclone: 0 });
      expect(r.claimed.map((c) => c.voiceId)).toEqual([fresh]);
      expect(r.heldBackByBudget).toBe(2);
      const r2 = await claimWith({ expectedTotal: '1', first: 5, reclone: 1 });
      expect(r2.claimed.map((c) => c.voiceId)).toEqual([before[0]]);
    });

    it('reclaims for a backlog only as far as the budget lets its clones out', async () => {
      const reclaim = new ReclaimRepository(ds);
      await slots.setLimits('elevenlabs', { configuredLimit: 3 });
      const held = (await Promise.all([0, 1, 2].map((i) => queueVoice(`h${i}`)))).slice();
      expect(await claim('elevenlabs', 50)).toHaveLength(3);
      await ds.query(
        `UPDATE voices SET status = 'ready', ready_at = now() - interval '1 hour',
                last_used_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])`,
        [held],
      );
      const waiting = [await queueVoice('w1'), await queueVoice('w2'), await queueVoice('w3')];
      const pick = async (clones: { first: number; reclone: number }) =>
        (
          await chooseVictims(reclaim, 'elevenlabs', {
            rules: { minIdleMs: 60_000, minResidencyMs: 60_000 },
            allowance: { ...UNLIMITED_CLONES, ...clones },
            max: 50,
          })
        ).victims;
      // The budget is spent: not one ready voice is taken for clones that cannot happen.
      expect(await pick({ first: 0, reclone: 0 })).toHaveLength(0);
      // Waiting voices were all cloned before and re-clones are paced: none either.
      await ds.query(`UPDATE voices SET ready_at = now() - interval '2 hours' WHERE id = ANY($1)`, [
        waiting,
      ]);
      expect(await pick({ first: 5, reclone: 0 })).toHaveLength(0);
      // One re-clone may go out: one victim, not three.
      expect(await pick({ first: 5, reclone: 1 })).toHaveLength(1);
      // Unlimited: the whole backlog (two more; one slot is already being freed).
      expect(await pick({ first: Infinity, reclone: Infinity })).toHaveLength(2);
    });

    it('counts a reading conservatively: clones still allocating stay counted by us', async () => {
      await slots.setLimits('elevenlabs', { configuredLimit: 10 });
      for (let i = 0; i < 3; i++) await queueVoice(`u${i}`);
      expect(await claim('elevenlabs', 50)).toHaveLength(3);
      const startedAt = new Date();
      const settled = await accounts().settledClones('elevenlabs');
      // The provider's counter may not include creates still in flight: 1 of our 3 reached it.
      await accounts().recordReading(
        'elevenlabs',
        { used: 41, limit: 95, resetsAt: new Date(Date.now() + 86_400_000) },
        settled,
        startedAt,
      );
      expect(budgetState(await accounts().budget('elevenlabs')).spent).toBe(44);
      // An older reading finishing late changes nothing.
      await accounts().recordReading(
        'elevenlabs',
        { used: 1, limit: 95, resetsAt: null },
        settled,
        new Date(startedAt.getTime() - 1000),
      );
      expect(budgetState(await accounts().budget('elevenlabs')).spent).toBe(44);
    });
  });
});
