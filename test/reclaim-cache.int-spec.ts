import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { decide } from '../src/policy/reclaim-policy';
import { ReclaimRepository, type VictimSnapshot } from '../src/reclaim/reclaim.repository';
import { chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import { ClaimRepository } from '../src/slots/claim.repository';
import { SlotsRepository } from '../src/slots/slots.repository';
import { VoiceAdmissionRepository } from '../src/voice/voice-admission.repository';
import { VoiceUsageRepository } from '../src/voice/voice-usage.repository';
import { secondsFromNow, sql, usageSet, VoiceRepository } from '../src/voice/voice.repository';
import { TestWorld } from './support/service';

const rules = { minIdleMs: 60_000, minResidencyMs: 60_000 };
const opts = { rules, allowance: UNLIMITED_CLONES, max: 50 };

/**
 * The reclaim's memory of a provider's ready voices (ReclaimRepository.snapshot): brought up to
 * date by the voice_events since it was filled, and never trusted for an eviction — whatever
 * changed a voice after the fill, with an event or without one, keeps that voice.
 */
describe('reclaim victims from a cached snapshot', () => {
  const world = new TestWorld();
  let ds: DataSource;
  let voices: VoiceRepository;
  let slots: SlotsRepository;
  let admissions: VoiceAdmissionRepository;
  let usage: VoiceUsageRepository;
  let claims: ClaimRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 10 } });
    await ds.initialize();
    voices = new VoiceRepository(ds);
    slots = new SlotsRepository(ds);
    admissions = new VoiceAdmissionRepository(ds);
    usage = new VoiceUsageRepository(ds);
    claims = new ClaimRepository(ds);
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

  async function queueVoice(userId: string): Promise<string> {
    const id = randomUUID();
    await admissions.insertPending({
      id,
      userId,
      name: `v-${id.slice(0, 4)}`,
      provider: 'elevenlabs',
      language: null,
      sampleKey: `xx/${id}`,
      sampleContentType: 'audio/wav',
      sampleFilename: 'a.wav',
      sampleSizeBytes: 100,
      sampleSha256: 'ab',
    });
    await voices.transaction(async (em) => {
      const tag = await voices.nextFairTag('elevenlabs', userId, em);
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

  /** `n` ready voices idle for hours (ready a day ago) holding every slot, and one voice waiting. */
  async function fullPoolWithBacklog(n: number): Promise<string[]> {
    await slots.setLimits('elevenlabs', { configuredLimit: n });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await queueVoice(`user-${i}`));
    await claims.claim('elevenlabs', {
      max: 50,
      allocationLeaseSeconds: 120,
      breakerCooldownSeconds: 30,
    });
    for (const [i, id] of ids.entries())
      await voices.transition({
        id,
        from: ['allocating'],
        to: 'ready',
        bumpToken: true,
        set: {
          remoteVoiceId: `r-${id}`,
          readyAt: sql(`now() - interval '1 day'`),
          lastUsedAt: sql(`now() - interval '${i + 2} hours'`),
        },
        event: { type: 'ready', reason: 'remote_created' },
      });
    await queueVoice('waiting');
    return ids;
  }

  /** The policy's first victim on a full read. */
  async function policyVictim(): Promise<string> {
    const snap = await new ReclaimRepository(ds).snapshot('elevenlabs', 50);
    const [first] = decide('service', {
      now: snap.now,
      slots: snap.slots,
      held: snap.held.map((h) => h.voice),
      busy: snap.busy,
      waiting: snap.waiting,
      ...opts,
    }).evict;
    return first;
  }

  const status = async (id: string) =>
    (await ds.query<{ status: string }[]>(`SELECT status FROM voices WHERE id = $1`, [id]))[0]
      .status;

  /**
   * A busy system's other events: the snapshot re-reads the voices of the last few event ids it
   * has seen (EVENT_TRAIL) in case one committed late, which would otherwise bring this small
   * test's voices up to date whatever changed them.
   */
  async function otherEvents(n: number): Promise<void> {
    const other = randomUUID();
    await admissions.insertPending({
      id: other,
      userId: 'someone-else',
      name: 'other',
      provider: 'elevenlabs',
      language: null,
      sampleKey: `xx/${other}`,
      sampleContentType: 'audio/wav',
      sampleFilename: 'a.wav',
      sampleSizeBytes: 100,
      sampleSha256: 'ab',
    });
    await ds.query(
      `INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
       SELECT $1, 'metadata_ok', 'metadata_valid', 'pending', 'queued' FROM generate_series(1, $2)`,
      [other, n],
    );
  }

  const activations: [string, boolean, (id: string) => Promise<unknown>][] = [
    [
      'an activation that takes a lease (its event brings the cache up to date)',
      true,
      (id) =>
        voices.transition({
          id,
          from: ['ready'],
          to: 'ready',
          set: {
            leaseExpiresAt: secondsFromNow(600),
            lastUsedAt: sql('now()'),
            ...usageSet('now()'),
          },
          event: { type: 'activated', reason: 'activation' },
        }),
    ],
    [
      'a use under a lease, which writes no event',
      false,
      (id) => usage.recordLastUse([id], [new Date()]),
    ],
    [
      'a direct SQL edit of the lease (no event, no notification)',
      false,
      (id) =>
        ds.query(`UPDATE voices SET lease_expires_at = now() + interval '1 hour' WHERE id = $1`, [
          id,
        ]),
    ],
  ];

  it.each(activations)(
    'never evicts a voice activated after the cache was filled: %s',
    async (_how, withEvent, activate) => {
      await fullPoolWithBacklog(3);
      await otherEvents(1000);
      const reclaim = new ReclaimRepository(ds);
      const target = await policyVictim();
      // Filled now; the activation below happens after.
      const filled = await reclaim.snapshot('elevenlabs', 50);
      expect(filled.held).toHaveLength(3);
      await activate(target);
      const snapshots: Promise<VictimSnapshot>[] = [];
      const read = reclaim.snapshot.bind(reclaim);
      jest.spyOn(reclaim, 'snapshot').mockImplementation((...args) => {
        const snap = read(...args);
        snapshots.push(snap);
        return snap;
      });

      const { victims } = await chooseVictims(reclaim, 'elevenlabs', opts);

      expect(victims.map((v) => v.voiceId)).not.toContain(target);
      expect(await status(target)).toBe('ready');
      // The slot the backlog needs is still freed, from another voice.
      expect(victims).toHaveLength(1);
      // The first decision was taken on the cache: up to date through the event, or still with
      // the voice as it was filled, which the mark refused and a full read decided again.
      const first = await snapshots[0];
      expect(first.cached).toBe(true);
      const asFilled = filled.held.find((h) => h.id === target);
      expect(asFilled).toBeDefined();
      const seen = first.held.find((h) => h.id === target);
      if (withEvent) {
        expect(seen).not.toEqual(asFilled);
        expect(snapshots).toHaveLength(1);
      } else {
        expect(seen).toEqual(asFilled);
        expect(snapshots).toHaveLength(2);
        expect((await snapshots[1]).cached).toBe(false);
      }
    },
  );

  it('follows voices that became ready or left since the fill, as a full read sees them', async () => {
    const ids = await fullPoolWithBacklog(3);
    const reclaim = new ReclaimRepository(ds);
    await reclaim.snapshot('elevenlabs', 50);
    // One leaves (deleted by its user); one joins (a fourth slot, cloned now).
    await voices.transition({
      id: ids[0],
      from: ['ready'],
      to: 'deleted',
      bumpToken: true,
      event: { type: 'deleted', reason: 'user_delete' },
    });
    await slots.setLimits('elevenlabs', { configuredLimit: 4 });
    const [joined] = await claims.claim('elevenlabs', {
      max: 1,
      allocationLeaseSeconds: 120,
      breakerCooldownSeconds: 30,
    });
    await voices.transition({
      id: joined.voiceId,
      from: ['allocating'],
      to: 'ready',
      bumpToken: true,
      set: { remoteVoiceId: 'r-joined', readyAt: sql('now()') },
      event: { type: 'ready', reason: 'remote_created' },
    });

    const cached = await reclaim.snapshot('elevenlabs', 50);
    const full = await new ReclaimRepository(ds).snapshot('elevenlabs', 50);
    expect(cached.cached).toBe(true);
    const byId = (s: VictimSnapshot) => [...s.held].sort((a, b) => a.id.localeCompare(b.id));
    expect(byId(cached)).toEqual(byId(full));
    expect(cached.held.map((h) => h.id).sort()).toEqual([ids[1], ids[2], joined.voiceId].sort());
  });

  it('refuses a chosen voice whose row at the same address no longer shows what the decision saw', async () => {
    const ids = await fullPoolWithBacklog(1);
    const reclaim = new ReclaimRepository(ds);
    const [held] = (await reclaim.snapshot('elevenlabs', 50)).held;
    expect(held.id).toBe(ids[0]);
    // The same address and id (a line pointer reused by a later version of the row), but the
    // decision read another lease, last use or readiness than the row holds now.
    const as = (voice: Partial<typeof held.voice>) => [
      { ...held, voice: { ...held.voice, ...voice } },
    ];
    const cap = { mode: 'backlog', ...UNLIMITED_CLONES } as const;
    for (const seen of [
      as({ leaseExpiresAt: held.voice.readyAt }),
      as({ lastUsedAt: held.voice.lastUsedAt - 1 }),
      as({ readyAt: held.voice.readyAt - 1 }),
    ])
      expect(await reclaim.markChosen('elevenlabs', seen, cap)).toEqual({ victims: [], stale: 1 });
    expect((await reclaim.markChosen('elevenlabs', [held], cap)).victims).toHaveLength(1);
  });
});
