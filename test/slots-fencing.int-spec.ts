import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { sql, type VoiceRepository } from '../src/voice/voice.repository';
import type { SlotsRepository } from '../src/slots/slots.repository';
import type { ClaimRepository } from '../src/slots/claim.repository';
import type { AllocationLeaseRepository } from '../src/slots/allocation-lease.repository';
import type { SchedulerTickRepository } from '../src/scheduler/scheduler-tick.repository';
import type { VoiceCleanupRepository } from '../src/voice/voice-cleanup.repository';
import { useSlotPool } from './support/slot-pool';

/**
 * Compare-and-set transitions on the real Postgres: fencing tokens and allocation leases that a
 * stale worker cannot renew, a deleted voice counted until cleaned up, once-per-tick timed work.
 */
describe('slot pool on Postgres', () => {
  const { pool, claim, queueVoice } = useSlotPool();
  let ds: DataSource;
  let voices: VoiceRepository;
  let slots: SlotsRepository;
  let claims: ClaimRepository;
  let leases: AllocationLeaseRepository;
  let ticks: SchedulerTickRepository;
  let cleanups: VoiceCleanupRepository;
  beforeAll(() => ({ ds, voices, slots, claims, leases, ticks, cleanups } = pool));

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
});
