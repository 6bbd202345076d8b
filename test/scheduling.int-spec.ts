import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { ProviderName } from '../src/config/app-config';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { SlotsRepository } from '../src/slots/slots.repository';
import { ClaimRepository } from '../src/slots/claim.repository';
import { VoiceCleanupRepository } from '../src/voice/voice-cleanup.repository';
import { VoiceAdmissionRepository } from '../src/voice/voice-admission.repository';
import { secondsFromNow, sql, VoiceRepository } from '../src/voice/voice.repository';
import { TestWorld } from './support/service';

const PROVIDERS: ProviderName[] = ['elevenlabs', 'cartesia'];
const USERS = ['u0', 'u1', 'u2', 'u3'];

type Op =
  | { kind: 'arrive'; user: number; provider: number }
  | { kind: 'dispatch'; provider: number; replicas: number }
  | { kind: 'finish'; pick: number }
  | { kind: 'activate'; pick: number }
  | { kind: 'release'; pick: number }
  | { kind: 'reclaim'; provider: number; replicas: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('arrive' as const),
      user: fc.nat(USERS.length - 1),
      provider: fc.nat(1),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('dispatch' as const),
      provider: fc.nat(1),
      replicas: fc.integer({ min: 1, max: 4 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('activate' as const), pick: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(50) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('reclaim' as const),
      provider: fc.nat(1),
      replicas: fc.integer({ min: 1, max: 3 }),
    }),
  },
);

/**
 * Property-based: random arrivals, claims by several concurrent dispatchers ("replicas"),
 * allocations finishing, activations, releases and reclaims, checked after every step against
 * ARCHITECTURE.md's invariants on the real Postgres.
 */
describe('scheduling invariants (property-based, real Postgres)', () => {
  const world = new TestWorld();
  let ds: DataSource;
  let voices: VoiceRepository;
  let admissions: VoiceAdmissionRepository;
  let slots: SlotsRepository;
  let claims: ClaimRepository;
  let cleanups: VoiceCleanupRepository;
  let reclaim: ReclaimRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 20 } });
    await ds.initialize();
    voices = new VoiceRepository(ds);
    admissions = new VoiceAdmissionRepository(ds);
    slots = new SlotsRepository(ds);
    claims = new ClaimRepository(ds);
    cleanups = new VoiceCleanupRepository(ds);
    reclaim = new ReclaimRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await world.dispose();
  });

  it('holds capacity, FIFO per user, bounded waits, and reclaims only where needed and never under lease', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 })),
        fc.array(opArb, { minLength: 10, maxLength: 45 }),
        async ([limitA, limitB], ops) => {
          await ds.query('TRUNCATE voices CASCADE');
          await ds.query(`UPDATE providers SET account_limit = NULL, foreign_count = 0, virtual_time = 0,
                            breaker_state = 'closed', breaker_failures = 0`);
          const limits: Record<ProviderName, number> = { elevenlabs: limitA, cartesia: limitB };
          for (const p of PROVIDERS) await slots.setLimits(p, { configuredLimit: limits[p] });

          // The model: per (provider, user) the queue order, and claims in order.
          const queuedOrder = new Map<string, string[]>(); // key provider/user -> voice ids in queue order
          const info = new Map<
            string,
            { user: string; provider: ProviderName; seq: number; rank: number }
          >();
          let seq = 0;
          const claimedSeq: string[] = [];

          for (const op of ops) {
            switch (op.kind) {
              case 'arrive': {
                const user = USERS[op.user];
                const provider = PROVIDERS[op.provider];
                const id = randomUUID();
                await admissions.insertPending({
                  id,
                  userId: user,
                  name: 'v',
                  provider,
                  language: null,
                  sampleKey: `xx/${id}`,
                  sampleContentType: 'audio/wav',
                  sampleFilename: 'a.wav',
                  sampleSizeBytes: 1,
                  sampleSha256: 'x',
                });
                await voices.queueFairly({
                  id,
                  provider,
                  userId: user,
                  from: ['pending'],
                  event: { type: 'metadata_ok', reason: 'metadata_valid' },
                });
                const key = `${provider}/${user}`;
                const list = queuedOrder.get(key) ?? [];
                list.push(id);
                queuedOrder.set(key, list);
                info.set(id, { user, provider, seq: seq++, rank: list.length });
                break;
              }
              case 'dispatch': {
                const provider = PROVIDERS[op.provider];
                const results = await Promise.all(
                  Array.from({ length: op.replicas }, () =>
                    claims.claim(provider, {
                      max: 50,
                      allocationLeaseSeconds: 120,
                      breakerCooldownSeconds: 30,
                    }),
                  ),
                );
                const claimed = results.flat().map((c) => c.voiceId);
                expect(new Set(claimed).size).toBe(claimed.length); // no voice claimed twice
                for (const id of claimed) {
                  // FIFO per user: the claimed voice is the head of its user's queue.
                  const meta = info.get(id)!;
                  const list = queuedOrder.get(`${meta.provider}/${meta.user}`)!;
                  expect(list[0]).toBe(id);
                  list.shift();
                  claimedSeq.push(id);
                }
                break;
              }
              case 'finish': {
                const rows: { id: string; fencing_token: string }[] = await ds.query(
                  `SELECT id, fencing_token FROM voices WHERE status = 'allocating' ORDER BY id`,
                );
                if (!rows.length) break;
                const r = rows[op.pick % rows.length];
                await voices.transition({
                  id: r.id,
                  from: ['allocating'],
                  token: String(r.fencing_token),
                  to: 'ready',
                  set: {
                    remoteVoiceId: `r-${r.id}`,
                    readyAt: sql(`now() - interval '1 hour'`),
                    lastUsedAt: sql(`now() - interval '1 hour'`),
                  },
                  event: { type: 'ready', reason: 'remote_created' },
                });
                break;
              }
              case 'activate': {
                const rows: { id: string }[] = await ds.query(
                  `SELECT id FROM voices WHERE status = 'ready' ORDER BY id`,
                );
                if (!rows.length) break;
                const id = rows[op.pick % rows.length].id;
                await voices.transition({
                  id,
                  from: ['ready'],
                  to: 'ready',
                  set: { leaseExpiresAt: secondsFromNow(600) },
                  event: { type: 'activated', reason: 'activation' },
                });
                break;
              }
              case 'release': {
                const rows: { id: string; remote_voice_id: string }[] = await ds.query(
                  `SELECT id, remote_voice_id FROM voices WHERE status = 'ready' ORDER BY id`,
                );
                if (!rows.length) break;
                const r = rows[op.pick % rows.length];
                await voices.transition({
                  id: r.id,
                  from: ['ready'],
                  to: 'deleted',
                  bumpToken: true,
                  set: { remoteCleanupPending: true },
                  event: { type: 'deleted', reason: 'user_delete' },
                });
                await cleanups.clearRemote(r.id, r.remote_voice_id);
                break;
              }
              case 'reclaim': {
                const provider = PROVIDERS[op.provider];
                const before: { queued: number; leased: string[] }[] = await ds.query(
                  `SELECT (SELECT count(*)::int FROM voices WHERE provider = $1 AND status = 'queued') AS queued,
                          ARRAY(SELECT id::text FROM voices WHERE status = 'ready' AND lease_expires_at > now()) AS leased`,
                  [provider],
                );
                const picked = (
                  await Promise.all(
                    Array.from({ length: op.replicas }, () =>
                      chooseVictims(reclaim, provider, {
                        rules: { minIdleMs: 60_000, minResidencyMs: 60_000 },
                        allowance: UNLIMITED_CLONES,
                        max: 50,
                      }).then((c) => c.victims),
                    ),
                  )
                ).flat();
                if (before[0].queued === 0) expect(picked).toEqual([]);
                const cap = await slots.capacity(provider);
                // Never more than the backlog needs beyond free slots; never a leased voice; only this provider.
                expect(picked.length).toBeLessThanOrEqual(Math.max(0, before[0].queued - cap.free));
                for (const v of picked) {
                  expect(before[0].leased).not.toContain(v.voiceId);
                  expect(info.get(v.voiceId)?.provider).toBe(provider);
                  // Complete the reclaim: the slot frees.
                  await voices.transition({
                    id: v.voiceId,
                    from: ['reclaiming'],
                    token: v.fencingToken,
                    to: 'reclaimed',
                    set: { remoteVoiceId: null },
                    event: { type: 'reclaimed', reason: 'idle_reclaim' },
                  });
                }
                break;
              }
            }
            // Capacity: never more held than the limit, under any interleaving above.
            for (const p of PROVIDERS) {
              const cap = await slots.capacity(p);
              expect(cap.held).toBeLessThanOrEqual(limits[p]);
            }
          }

          // Bounded wait: voices queued after w and claimed before w are at most
          // (other users) × (w's rank in its own queue), the start-time fair queuing bound.
          const claimIndex = new Map(claimedSeq.map((id, i) => [id, i]));
          for (const [id, meta] of info) {
            const at = claimIndex.get(id);
            if (at === undefined) continue;
            const overtakers = claimedSeq
              .slice(0, at)
              .filter(
                (o) => info.get(o)!.provider === meta.provider && info.get(o)!.seq > meta.seq,
              ).length;
            expect(overtakers).toBeLessThanOrEqual((USERS.length - 1) * meta.rank);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
