import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { SlotsRepository } from '../src/slots/slots.repository';
import { VoiceRepository, sql } from '../src/voice/voice.repository';
import { TestWorld } from './support/service';

/**
 * The slot pool's SQL on the real Postgres: the claim under the provider lock, fair order,
 * compare-and-set transitions with fencing tokens, and once-per-tick timed work.
 */
describe('slot pool on Postgres', () => {
  const world = new TestWorld();
  let ds: DataSource;
  let voices: VoiceRepository;
  let slots: SlotsRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 30 } });
    await ds.initialize();
    voices = new VoiceRepository(ds);
    slots = new SlotsRepository(ds);
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
  });

  const claim = (provider: 'elevenlabs' | 'cartesia', max: number) =>
    slots.claim(provider, { max, allocationLeaseSeconds: 120, breakerCooldownSeconds: 30 });

  async function queueVoice(
    userId: string,
    provider: 'elevenlabs' | 'cartesia' = 'elevenlabs',
  ): Promise<string> {
    const id = randomUUID();
    await voices.insertPending({
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
    const policy = {
      mode: 'backlog',
      minIdleSeconds: 60,
      minResidencySeconds: 60,
      max: 50,
    } as const;
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
      () => reclaim.pickVictims('elevenlabs', policy),
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
    await slots.recordProviderSuccess('elevenlabs');
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
    expect((await voices.queuePosition(queued))?.position).toBe(1);
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
    expect(await slots.beginAttempt(id, claimed.fencingToken, 120)).toBeNull();
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
    const [claimed] = await slots.claim('elevenlabs', {
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
    expect(await slots.renewLease(id, claimed.fencingToken, 60)).toBe(true);
    const renewed = await leaseOf();
    expect(renewed.at.getTime()).toBeGreaterThan(first.at.getTime() + 30_000);
    expect((await slots.expiredAllocations(10)).map((e) => e.id)).not.toContain(id);

    // The holder freezes past its lease; the sweeper finds it and takes the voice over.
    await ds.query(
      `UPDATE voices SET allocation_lease_expires_at = now() - interval '1 second' WHERE id = $1`,
      [id],
    );
    expect(await slots.expiredAllocations(10)).toEqual([
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
    expect(await slots.renewLease(id, claimed.fencingToken, 600)).toBe(false);
    expect(await slots.beginAttempt(id, claimed.fencingToken, 600)).toBeNull();
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
    expect(await slots.renewLease(id, taken!.fencingToken, 60)).toBe(true);
    await voices.transition({
      id,
      from: ['allocating'],
      token: taken!.fencingToken,
      to: 'ready',
      set: { remoteVoiceId: 'r1', allocationLeaseExpiresAt: null },
      event: { type: 'ready', reason: 'remote_created' },
    });
    expect(await slots.renewLease(id, taken!.fencingToken, 60)).toBe(false);
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
    expect(await voices.clearRemote(id, 'r1')).toBe(true);
    expect(await claim('elevenlabs', 5)).toHaveLength(1);
  });

  it('runs a timed task once per period across replicas', async () => {
    const name = `task-${randomUUID()}`;
    const wins = await Promise.all(Array.from({ length: 6 }, () => slots.claimTick(name, 60)));
    expect(wins.filter(Boolean)).toHaveLength(1);
  });
});
