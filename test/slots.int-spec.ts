import { decide, type HeldVoice } from '../src/policy/reclaim-policy';
import { firstUse, recordUse } from '../src/policy/voice-usage';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { chooseIdleVictims, chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import type { DataSource } from 'typeorm';
import type { VoiceUsageRepository } from '../src/voice/voice-usage.repository';
import type { SlotsRepository } from '../src/slots/slots.repository';
import { useSlotPool } from './support/slot-pool';

/**
 * Reclaim on the real Postgres's slot pool: victims counted under the provider lock, the
 * service's policy as the pure one decides, the use history recordUse computes, idle reclaim.
 */
describe('slot pool on Postgres', () => {
  const { pool, claim, queueVoice, whileAnotherHoldsTheLock } = useSlotPool();
  let ds: DataSource;
  let usage: VoiceUsageRepository;
  let slots: SlotsRepository;
  beforeAll(() => ({ ds, usage, slots } = pool));

  it('counts the victims a reclaim committed while another reclaim waited for the lock', async () => {
    const reclaim = new ReclaimRepository(ds);
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    for (let i = 0; i < 5; i++) await queueVoice(`user-${i}`);
    // Three voices hold every slot, long idle; two wait.
    const held = (await claim('elevenlabs', 50)).map((c) => c.voiceId);
    await ds.query(
      `UPDATE voices SET status = 'ready', ready_at = now() - interval '1 hour',
              last_used_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])`,
      [held],
    );
    // Another replica's reclaim, caught between taking the provider lock and committing one victim.
    const victims = await whileAnotherHoldsTheLock(
      (other) => other.query(`UPDATE voices SET status = 'reclaiming' WHERE id = $1`, [held[0]]),
      async () =>
        (
          await chooseVictims(reclaim, 'elevenlabs', {
            rules: { minIdleMs: 60_000, minResidencyMs: 60_000 },
            allowance: UNLIMITED_CLONES,
            max: 50,
          })
        ).victims,
    );
    // Two wait and one slot is already being freed: one more victim, not two.
    expect(victims).toHaveLength(1);
    expect(held).toContain(victims[0].voiceId);
    expect(victims[0].voiceId).not.toBe(held[0]);
  });

  describe('the reclaim policy in the service', () => {
    const HOUR = 3_600_000;
    const rules = { minIdleMs: 60_000, minResidencyMs: 60_000 };

    it('makes the same choice as the pure policy on the same state, which is not LRU here', async () => {
      const reclaim = new ReclaimRepository(ds);
      await slots.setLimits('elevenlabs', { configuredLimit: 3 });
      const ids = [await queueVoice('a'), await queueVoice('b'), await queueVoice('c')];
      expect(await claim('elevenlabs', 50)).toHaveLength(3);
      // a: a regular (40 sessions in 10 days), idle 2 h; b: a newcomer seen once, idle 1 h;
      // c: in use a minute ago. LRU would take a; the service policy takes b.
      const now = Date.now();
      const rows = [
        { id: ids[0], used: now - 2 * HOUR, first: now - 240 * HOUR, sessions: 40 },
        { id: ids[1], used: now - 1 * HOUR, first: now - 1 * HOUR, sessions: 1 },
        { id: ids[2], used: now - 90_000, first: now - 48 * HOUR, sessions: 5 },
      ];
      for (const r of rows) {
        await ds.query(
          `UPDATE voices SET status = 'ready', ready_at = $2, last_used_at = $3, first_used_at = $4,
                  session_count = $5, use_count = $5 WHERE id = $1`,
          [r.id, new Date(now - 300 * HOUR), new Date(r.used), new Date(r.first), r.sessions],
        );
      }
      const waiting = await queueVoice('d');
      const held: HeldVoice[] = rows.map((r) => ({
        id: r.id,
        lastUsedAt: r.used,
        leaseExpiresAt: null,
        readyAt: now - 300 * HOUR,
        useOrder: 0,
        usage: { uses: r.sessions, sessions: r.sessions, firstUsedAt: r.first, lastUsedAt: r.used },
      }));
      const snapshot = {
        now,
        slots: 3,
        held,
        busy: 0,
        waiting: [{ id: waiting, clonedBefore: false, queuedAt: now }],
        allowance: UNLIMITED_CLONES,
        rules,
      };
      expect(decide('service', snapshot).evict).toEqual([ids[1]]);
      expect(decide('lru', snapshot).evict).toEqual([ids[0]]);
      const { victims } = await chooseVictims(reclaim, 'elevenlabs', {
        rules,
        allowance: UNLIMITED_CLONES,
        max: 50,
      });
      expect(victims.map((v) => v.voiceId)).toEqual([ids[1]]);
    });

    it('leaves a voice activated after the snapshot to the next decision', async () => {
      const reclaim = new ReclaimRepository(ds);
      await slots.setLimits('elevenlabs', { configuredLimit: 1 });
      const id = await queueVoice('a');
      expect(await claim('elevenlabs', 50)).toHaveLength(1);
      await ds.query(
        `UPDATE voices SET status = 'ready', ready_at = now() - interval '1 day',
                last_used_at = now() - interval '1 hour' WHERE id = $1`,
        [id],
      );
      await queueVoice('b');
      const snap = await reclaim.snapshot('elevenlabs', 50);
      await usage.recordLastUse([id], [new Date()]);
      expect(
        await reclaim.markVictims('elevenlabs', snap.held, {
          mode: 'backlog',
          ...UNLIMITED_CLONES,
        }),
      ).toEqual([]);
    });

    it('keeps the use history an activation adds exactly as recordUse computes it', async () => {
      const id = await queueVoice('a');
      const t0 = Date.parse('2026-11-01T10:00:00Z');
      // Gaps of 1, 28 and 46 minutes, then 29 h: two session boundaries at 30 minutes, not at 60.
      const times = [0, 60_000, 29 * 60_000, 75 * 60_000, 75 * 60_000 + 1, 30 * HOUR].map(
        (d) => t0 + d,
      );
      let expected = firstUse(times[0]);
      await usage.recordLastUse([id], [new Date(times[0])]);
      for (const t of times.slice(1)) {
        await usage.recordLastUse([id], [new Date(t)]);
        expected = recordUse(expected, t);
      }
      const [row] = await ds.query<{ sessions: number; uses: number; first: Date; last: Date }[]>(
        `SELECT session_count AS sessions, use_count AS uses, first_used_at AS first,
                last_used_at AS last FROM voices WHERE id = $1`,
        [id],
      );
      expect({
        uses: row.uses,
        sessions: row.sessions,
        firstUsedAt: row.first.getTime(),
        lastUsedAt: row.last.getTime(),
      }).toEqual(expected);
    });
  });

  it('reclaims for cost only the voices idle past the threshold and unprotected, and says so in the event', async () => {
    const reclaim = new ReclaimRepository(ds);
    await slots.setLimits('elevenlabs', { configuredLimit: 5 });
    const [idle, busy, leased, young] = [
      await queueVoice('a'),
      await queueVoice('b'),
      await queueVoice('c'),
      await queueVoice('d'),
    ];
    expect(await claim('elevenlabs', 50)).toHaveLength(4);
    // All but `busy` idle for two hours; `leased` under an activation lease, `young` ready a
    // moment ago (its last use predates a re-clone).
    await ds.query(
      `UPDATE voices SET status = 'ready',
              ready_at = CASE WHEN id = $2 THEN now() ELSE now() - interval '1 day' END,
              last_used_at = CASE WHEN id = $3 THEN now() ELSE now() - interval '2 hours' END,
              lease_expires_at = CASE WHEN id = $4 THEN now() + interval '1 hour' END
        WHERE id = ANY($1::uuid[])`,
      [[idle, busy, leased, young], young, busy, leased],
    );
    const victims = await chooseIdleVictims(reclaim, 'elevenlabs', {
      rules: { minIdleMs: 600_000, minResidencyMs: 60_000 },
      maxIdleMs: 3_600_000,
      max: 50,
    });
    expect(victims.map((v) => v.voiceId)).toEqual([idle]);
    const [event] = await ds.query<{ metadata: { mode: string } }[]>(
      `SELECT metadata FROM voice_events WHERE voice_id = $1 AND type = 'reclaiming'`,
      [idle],
    );
    expect(event.metadata.mode).toBe('idle');
  });
});
