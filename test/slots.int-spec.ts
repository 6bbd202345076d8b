import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { cloneAllowance } from '../src/policy/clone-budget';
import {
  budgetState,
  ProviderAccountsRepository,
} from '../src/providers/provider-accounts.repository';
import { decide, type HeldVoice } from '../src/policy/reclaim-policy';
import { firstUse, recordUse } from '../src/policy/voice-usage';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { chooseIdleVictims, chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import { SlotsRepository } from '../src/slots/slots.repository';
import { ClaimRepository } from '../src/slots/claim.repository';
import { AllocationLeaseRepository } from '../src/slots/allocation-lease.repository';
import { SchedulerTickRepository } from '../src/scheduler/scheduler-tick.repository';
import { BreakerRepository } from '../src/providers/breaker.repository';
import { QueuePositionRepository } from '../src/voice/queue-position.repository';
import { VoiceCleanupRepository } from '../src/voice/voice-cleanup.repository';
import { VoiceAdmissionRepository } from '../src/voice/voice-admission.repository';
import { VoiceUsageRepository } from '../src/voice/voice-usage.repository';
import { VoiceRepository, sql } from '../src/voice/voice.repository';
import { TestWorld } from './support/service';

const QUEUE_INFO = {
  budget: { reserveShare: 0.1, periodSeconds: 30 * 86_400, burstShare: 0.1 },
  allocationLeaseSeconds: 120,
  positionMax: 1000,
};

/**
 * The slot pool's SQL on the real Postgres: the claim under the provider lock, fair order,
 * compare-and-set transitions with fencing tokens, and once-per-tick timed work.
 */
describe('slot pool on Postgres', () => {
  const world = new TestWorld();
  let ds: DataSource;
  let voices: VoiceRepository;
  let admissions: VoiceAdmissionRepository;
  let usage: VoiceUsageRepository;
  let slots: SlotsRepository;
  let claims: ClaimRepository;
  let leases: AllocationLeaseRepository;
  let ticks: SchedulerTickRepository;
  let breaker: BreakerRepository;
  let positions: QueuePositionRepository;
  let cleanups: VoiceCleanupRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 30 } });
    await ds.initialize();
    voices = new VoiceRepository(ds);
    admissions = new VoiceAdmissionRepository(ds);
    usage = new VoiceUsageRepository(ds);
    slots = new SlotsRepository(ds);
    claims = new ClaimRepository(ds);
    leases = new AllocationLeaseRepository(ds);
    ticks = new SchedulerTickRepository(ds);
    breaker = new BreakerRepository(ds);
    positions = new QueuePositionRepository(ds);
    cleanups = new VoiceCleanupRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await world.dispose();
  });

  beforeEach(async () => {
    await ds.query('TRUNCATE voices CASCADE');
    await ds.query(
      `UPDATE providers SET configured_limit = NULL, account_limit = NULL, foreign_count = 0, virtual_time = 0`,
    );
    await ds.query(
      `UPDATE provider_accounts SET budget_configured = NULL, budget_published = NULL, budget_used = 0,
              clones_total = 0, clones_at_read = 0, budget_resets_at = NULL, budget_reset_source = NULL,
              budget_exhausted_until = NULL, budget_checked_at = NULL, budget_spent_noted = false`,
    );
  });

  const claim = (provider: 'elevenlabs' | 'cartesia', max: number) =>
    claims.claim(provider, { max, allocationLeaseSeconds: 120, breakerCooldownSeconds: 30 });

  async function queueVoice(
    userId: string,
    provider: 'elevenlabs' | 'cartesia' = 'elevenlabs',
  ): Promise<string> {
    const id = randomUUID();
    await admissions.insertPending({
      id,
      userId,
      name: `v-${id.slice(0, 4)}`,
      provider,
      language: null,
      sampleKey: `xx/${id}`,
      sampleContentType: 'audio/wav',
      sampleFilename: 'a.wav',
      sampleSizeBytes: 100,
      sampleSha256: 'ab',
    });
    await voices.transaction(async (em) => {
      const tag = await voices.nextFairTag(provider, userId, em);
      await voices.transition(
        {
          id,
          from: ['pending'],
          to: 'queued',
          set: { fairTag: tag, queuedAt: sql('clock_timestamp()') },
          event: { type: 'metadata_ok', reason: 'metadata_valid' },
        },
        em,
      );
    });
    return id;
  }

  /**
   * Another replica's transaction holds the ElevenLabs provider lock and has done `meanwhile`;
   * it commits only once `statement` waits for that lock, i.e. after the statement has begun.
   */
  async function whileAnotherHoldsTheLock<T>(
    meanwhile: (other: Client) => Promise<unknown>,
    statement: () => Promise<T>,
  ): Promise<T> {
    return world.db(async (other) => {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM providers WHERE name = 'elevenlabs' FOR UPDATE`);
      await meanwhile(other);
      const waiting = statement();
      const deadline = Date.now() + 10_000;
      for (let blocked = false; !blocked;) {
        if (Date.now() > deadline) throw new Error('the statement never waited for the lock');
        const { rows } = await other.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        blocked = rows[0].n > 0;
      }
      await other.query('COMMIT');
      return waiting;
    });
  }

  it('never claims beyond the limit with 8 dispatchers racing for 3 slots', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    for (let i = 0; i < 20; i++) await queueVoice(`user-${i % 4}`);
    const claims = await Promise.all(Array.from({ length: 8 }, () => claim('elevenlabs', 50)));
    expect(claims.flat()).toHaveLength(3);
    const cap = await slots.capacity('elevenlabs');
    expect(cap).toMatchObject({ limit: 3, held: 3, free: 0, queued: 17 });
    // A second wave, after nothing was freed, claims nothing.
    const again = await Promise.all(Array.from({ length: 8 }, () => claim('elevenlabs', 50)));
    expect(again.flat()).toHaveLength(0);
  });

  it('counts the voices a claim committed while another claim waited for the lock', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    for (let i = 0; i < 6; i++) await queueVoice(`user-${i}`);
    // Another replica's claim, caught between taking the provider lock and committing.
    const claimed = await whileAnotherHoldsTheLock(
      (other) =>
        other.query(
          `UPDATE voices SET status = 'allocating', fencing_token = fencing_token + 1
            WHERE id IN (SELECT id FROM voices WHERE status = 'queued'
                          ORDER BY fair_tag, queued_at, id LIMIT 2)`,
        ),
      () => claim('elevenlabs', 50),
    );
    expect(claimed).toHaveLength(1);
    expect(await slots.capacity('elevenlabs')).toMatchObject({ held: 3, free: 0, queued: 3 });
  });

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

  it('claims nothing under an open breaker until the cool-down, then exactly one probe', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 10 });
    for (let i = 0; i < 4; i++) await queueVoice(`user-${i}`);
    await ds.query(
      `UPDATE providers SET breaker_state = 'open', breaker_opened_at = now() WHERE name = 'elevenlabs'`,
    );
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    await ds.query(
      `UPDATE providers SET breaker_opened_at = now() - interval '31 seconds' WHERE name = 'elevenlabs'`,
    );
    const probes = await Promise.all(Array.from({ length: 4 }, () => claim('elevenlabs', 50)));
    expect(probes.flat()).toHaveLength(1);
    const cap = await slots.capacity('elevenlabs');
    expect(cap).toMatchObject({ breaker: 'half_open', held: 1, queued: 3 });
    // While the probe's lease runs nothing more goes out; once it has run out, one more probe.
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    await ds.query(
      `UPDATE providers SET breaker_probe_until = now() - interval '1 second' WHERE name = 'elevenlabs'`,
    );
    expect(await claim('elevenlabs', 50)).toHaveLength(1);
    // A success closes the breaker and claims go back to filling every free slot.
    await breaker.recordProviderSuccess('elevenlabs');
    expect(await claim('elevenlabs', 50)).toHaveLength(2);
  });

  it('counts foreign voices and the lower of configured and account limits', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 10, accountLimit: 4 });
    await slots.setForeignCount('elevenlabs', 1);
    for (let i = 0; i < 6; i++) await queueVoice('u');
    expect(await claim('elevenlabs', 50)).toHaveLength(3);
  });

  it("one provider's full pool does not stop another's claims", async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 0 });
    await slots.setLimits('cartesia', { configuredLimit: 2 });
    await queueVoice('u', 'elevenlabs');
    const c1 = await queueVoice('u', 'cartesia');
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    expect((await claim('cartesia', 50)).map((c) => c.voiceId)).toEqual([c1]);
  });

  it('serves users round robin, and each user first in first out', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 100 });
    const a = [
      await queueVoice('a'),
      await queueVoice('a'),
      await queueVoice('a'),
      await queueVoice('a'),
    ];
    const b = [await queueVoice('b'), await queueVoice('b')];
    const c = [await queueVoice('c')];
    const order = (await claim('elevenlabs', 50)).map((x) => x.voiceId);
    expect(order).toEqual([a[0], b[0], c[0], a[1], b[1], a[2], a[3]]);
  });

  it('places a late user ahead of the rest of an earlier burst', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 1 });
    const burst = [];
    for (let i = 0; i < 5; i++) burst.push(await queueVoice('early'));
    expect((await claim('elevenlabs', 50)).map((x) => x.voiceId)).toEqual([burst[0]]);
    const late = await queueVoice('late');
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    expect((await claim('elevenlabs', 50)).map((x) => x.voiceId)).toEqual([burst[1], late]);
    const queued = (await voices.findById(burst[2]))!;
    expect((await positions.queuePosition(queued, QUEUE_INFO))?.position).toBe(1);
  });

  it('lets only the current fencing token move a voice on', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 1 });
    const id = await queueVoice('u');
    const [claimed] = await claim('elevenlabs', 1);
    // The sweeper takes the voice over; the old holder's transition must do nothing.
    const taken = await voices.transition({
      id,
      from: ['allocating'],
      token: claimed.fencingToken,
      to: 'queued',
      bumpToken: true,
      event: { type: 'requeued', reason: 'lease_expired' },
    });
    expect(taken?.status).toBe('queued');
    const stale = await voices.transition({
      id,
      from: ['allocating'],
      token: claimed.fencingToken,
      to: 'ready',
      set: { remoteVoiceId: 'x' },
      event: { type: 'ready', reason: 'remote_created' },
    });
    expect(stale).toBeNull();
    expect(await leases.beginAttempt(id, claimed.fencingToken, 120)).toBeNull();
    const events = await voices.events(id);
    expect(events.map((e) => `${e.fromStatus}->${e.toStatus}:${e.reason}`)).toEqual([
      'null->pending:upload',
      'pending->queued:metadata_valid',
      'queued->allocating:slot_free',
      'allocating->queued:lease_expired',
    ]);
  });

  it("renews only the current holder's lease: a stale worker is refused after a take-over", async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 1 });
    const id = await queueVoice('u');
    const [claimed] = await claims.claim('elevenlabs', {
      max: 1,
      allocationLeaseSeconds: 2,
      breakerCooldownSeconds: 30,
    });
    const leaseOf = async () =>
      (
        await ds.query<{ at: Date; token: string }[]>(
          `SELECT allocation_lease_expires_at AS at, fencing_token::text AS token FROM voices WHERE id = $1`,
          [id],
        )
      )[0];
    const first = await leaseOf();

    // The holder renews: the lease moves forward and the sweeper leaves the voice alone.
    expect(await leases.renewLease(id, claimed.fencingToken, 60)).toBe(true);
    const renewed = await leaseOf();
    expect(renewed.at.getTime()).toBeGreaterThan(first.at.getTime() + 30_000);
    expect((await leases.expiredAllocations(10)).map((e) => e.id)).not.toContain(id);

    // The holder freezes past its lease; the sweeper finds it and takes the voice over.
    await ds.query(
      `UPDATE voices SET allocation_lease_expires_at = now() - interval '1 second' WHERE id = $1`,
      [id],
    );
    expect(await leases.expiredAllocations(10)).toEqual([
      { id, fencingToken: claimed.fencingToken },
    ]);
    const taken = await voices.transition({
      id,
      from: ['allocating'],
      token: claimed.fencingToken,
      to: 'allocating',
      bumpToken: true,
      set: { allocationLeaseExpiresAt: sql(`now() + interval '30 seconds'`) },
      event: { type: 'requeued', reason: 'lease_expired', metadata: { step: 'take_over' } },
    });
    expect(taken).not.toBeNull();
    const takenLease = await leaseOf();

    // The stale worker resumes: its renewal, a new attempt and its transition are all refused,
    // and none of them touches the new holder's lease.
    expect(await leases.renewLease(id, claimed.fencingToken, 600)).toBe(false);
    expect(await leases.beginAttempt(id, claimed.fencingToken, 600)).toBeNull();
    expect(
      await voices.transition({
        id,
        from: ['allocating'],
        token: claimed.fencingToken,
        to: 'ready',
        set: { remoteVoiceId: 'stale' },
        event: { type: 'ready', reason: 'remote_created' },
      }),
    ).toBeNull();
    expect(await leaseOf()).toEqual(takenLease);

    // The new holder's token renews; once the voice is ready no token renews it any more.
    expect(await leases.renewLease(id, taken!.fencingToken, 60)).toBe(true);
    await voices.transition({
      id,
      from: ['allocating'],
      token: taken!.fencingToken,
      to: 'ready',
      set: { remoteVoiceId: 'r1', allocationLeaseExpiresAt: null },
      event: { type: 'ready', reason: 'remote_created' },
    });
    expect(await leases.renewLease(id, taken!.fencingToken, 60)).toBe(false);
    expect((await voices.findById(id))?.remoteVoiceId).toBe('r1');
  });

  it('keeps a deleted voice counted until its remote voice is cleaned up', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 1 });
    const id = await queueVoice('u');
    const [claimed] = await claim('elevenlabs', 1);
    await voices.transition({
      id,
      from: ['allocating'],
      token: claimed.fencingToken,
      to: 'ready',
      set: { remoteVoiceId: 'r1' },
      event: { type: 'ready', reason: 'remote_created' },
    });
    await voices.transition({
      id,
      from: ['ready'],
      to: 'deleted',
      bumpToken: true,
      set: {
        remoteCleanupPending: sql(
          `v.remote_cleanup_pending OR v.status IN ('allocating','ready','reclaiming')`,
        ),
      },
      event: { type: 'deleted', reason: 'user_delete' },
    });
    await queueVoice('u2');
    expect(await claim('elevenlabs', 5)).toHaveLength(0);
    expect(await cleanups.clearRemote(id, 'r1')).toBe(true);
    expect(await claim('elevenlabs', 5)).toHaveLength(1);
  });

  it('runs a timed task once per period across replicas', async () => {
    const name = `task-${randomUUID()}`;
    const wins = await Promise.all(Array.from({ length: 6 }, () => ticks.claimTick(name, 60)));
    expect(wins.filter(Boolean)).toHaveLength(1);
  });

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
