import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from '../../src/database/data-source';
import { SlotsRepository } from '../../src/slots/slots.repository';
import { ClaimRepository } from '../../src/slots/claim.repository';
import { AllocationLeaseRepository } from '../../src/slots/allocation-lease.repository';
import { SchedulerTickRepository } from '../../src/scheduler/scheduler-tick.repository';
import { BreakerRepository } from '../../src/providers/breaker.repository';
import { QueuePositionRepository } from '../../src/voice/queue-position.repository';
import { VoiceCleanupRepository } from '../../src/voice/voice-cleanup.repository';
import { VoiceAdmissionRepository } from '../../src/voice/voice-admission.repository';
import { VoiceUsageRepository } from '../../src/voice/voice-usage.repository';
import { VoiceRepository, sql } from '../../src/voice/voice.repository';
import { TestWorld } from './service';

export const QUEUE_INFO = {
  budget: { reserveShare: 0.1, periodSeconds: 30 * 86_400, burstShare: 0.1 },
  allocationLeaseSeconds: 120,
  positionMax: 1000,
};

type Provider = 'elevenlabs' | 'cartesia';

/** The slot pool's repositories on a migrated database of their own, and ways to fill it. */
export interface SlotPool {
  ds: DataSource;
  voices: VoiceRepository;
  usage: VoiceUsageRepository;
  slots: SlotsRepository;
  claims: ClaimRepository;
  leases: AllocationLeaseRepository;
  ticks: SchedulerTickRepository;
  breaker: BreakerRepository;
  positions: QueuePositionRepository;
  cleanups: VoiceCleanupRepository;
}

/**
 * Sets up a slot pool for the enclosing describe: the repositories exist from its beforeAll on,
 * and every test starts from an empty pool with no limits, foreign voices or clone budget.
 */
export function useSlotPool() {
  const world = new TestWorld();
  const pool = {} as SlotPool;
  let admissions: VoiceAdmissionRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    const ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 30 } });
    await ds.initialize();
    admissions = new VoiceAdmissionRepository(ds);
    Object.assign(pool, {
      ds,
      voices: new VoiceRepository(ds),
      usage: new VoiceUsageRepository(ds),
      slots: new SlotsRepository(ds),
      claims: new ClaimRepository(ds),
      leases: new AllocationLeaseRepository(ds),
      ticks: new SchedulerTickRepository(ds),
      breaker: new BreakerRepository(ds),
      positions: new QueuePositionRepository(ds),
      cleanups: new VoiceCleanupRepository(ds),
    } satisfies SlotPool);
  });

  afterAll(async () => {
    await pool.ds?.destroy();
    await world.dispose();
  });

  beforeEach(async () => {
    await pool.ds.query('TRUNCATE voices CASCADE');
    await pool.ds.query(
      `UPDATE providers SET configured_limit = NULL, account_limit = NULL, foreign_count = 0, virtual_time = 0`,
    );
    await pool.ds.query(
      `UPDATE provider_accounts SET budget_configured = NULL, budget_published = NULL, budget_used = 0,
              clones_total = 0, clones_at_read = 0, budget_resets_at = NULL, budget_reset_source = NULL,
              budget_exhausted_until = NULL, budget_checked_at = NULL, budget_spent_noted = false`,
    );
  });

  const claim = (provider: Provider, max: number) =>
    pool.claims.claim(provider, { max, allocationLeaseSeconds: 120, breakerCooldownSeconds: 30 });

  async function queueVoice(userId: string, provider: Provider = 'elevenlabs'): Promise<string> {
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
    await pool.voices.transaction(async (em) => {
      const tag = await pool.voices.nextFairTag(provider, userId, em);
      await pool.voices.transition(
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

  return { pool, claim, queueVoice, whileAnotherHoldsTheLock };
}
