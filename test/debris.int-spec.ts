import Queue, { type Job } from 'bull';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { loadConfig } from '../src/config/app-config';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { JobName, QueueName, type JobPayloads } from '../src/queue/queues';
import { CapacityService } from '../src/slots/capacity.service';
import { SweeperService } from '../src/slots/sweeper.service';
import { LocalSampleStorage } from '../src/voice/local-sample-storage';
import { sampleKeyOf } from '../src/voice/sample-storage.port';
import { sql, VoiceRepository } from '../src/voice/voice.repository';
import { VoiceCleanupRepository } from '../src/voice/voice-cleanup.repository';
import { VoiceAdmissionRepository } from '../src/voice/voice-admission.repository';
import { TestWorld } from './support/service';

type CleanupJob = Job<JobPayloads[JobName.RemoteCleanup]>;

/**
 * A deleted voice's sample removal on the real Postgres and Redis: the truth is the voice row, so
 * a clean-up job that failed for good (or was lost) is scheduled again by the sweep and still runs
 * under the same job id, and a removal that storage refused waits its back-off and is tried again.
 * The capacity service and sweeper are the real ones; the parts of them these paths never reach
 * (providers, dispatch, slot accounting) are left out. Voices here have no remote voice.
 */
describe('deleted samples on Postgres and Redis', () => {
  const world = new TestWorld();
  const config = loadConfig(world.env());
  let ds: DataSource;
  let voices: VoiceRepository;
  let admissions: VoiceAdmissionRepository;
  let cleanups: VoiceCleanupRepository;
  let queue: Queue.Queue<JobPayloads[JobName.RemoteCleanup]>;
  let capacity: CapacityService;
  let sweeper: SweeperService;
  /** What the worker does with the next clean-up job: `fail` fails it for good. */
  let next: 'fail' | 'run' = 'run';
  const runs: string[] = [];

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource(dataSourceOptions(world.databaseUrl));
    await ds.initialize();
    voices = new VoiceRepository(ds);
    admissions = new VoiceAdmissionRepository(ds);
    cleanups = new VoiceCleanupRepository(ds);
    queue = new Queue(QueueName.Maintenance, world.env().REDIS_URL, {
      prefix: world.queuePrefix,
      // As the service's queues: a failed job is kept, which is what made Bull drop a new add.
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
    const unused = {} as never;
    capacity = new CapacityService(
      config,
      unused,
      voices,
      cleanups,
      unused,
      new LocalSampleStorage(world.storageDir),
      unused,
      unused,
      queue,
    );
    sweeper = new SweeperService(config, unused, voices, cleanups, unused, unused, capacity);
    void queue.process(JobName.RemoteCleanup, async (job: CleanupJob) => {
      runs.push(next);
      if (next === 'fail') {
        // Failed for good, as after its last attempt or a worker crash past maxStalledCount.
        void job.discard();
        throw new Error('worker lost');
      }
      await capacity.cleanup(job.data.voiceId);
    });
  });

  afterAll(async () => {
    await queue?.close();
    await ds?.destroy();
    await world.dispose();
  });

  /** A voice deleted (as VoiceService.delete does) with its sample on disk. */
  async function deletedVoiceWithSample(): Promise<{ id: string; path: string }> {
    const id = randomUUID();
    const key = sampleKeyOf(id);
    const path = join(world.storageDir, key);
    mkdirSync(join(world.storageDir, key.slice(0, 2)), { recursive: true });
    writeFileSync(path, 'RIFF');
    await admissions.insertPending({
      id,
      userId: 'u1',
      name: 'n',
      provider: 'elevenlabs',
      language: null,
      sampleKey: key,
      sampleContentType: 'audio/wav',
      sampleFilename: 'a.wav',
      sampleSizeBytes: 4,
      sampleSha256: 'ab',
    });
    const deleted = await voices.transition({
      id,
      from: ['pending'],
      to: 'deleted',
      set: { sampleRemovalDueAt: sql('now()') },
      event: { type: 'deleted', reason: 'user_delete' },
    });
    expect(deleted?.sampleRemovalPending).toBe(true);
    return { id, path };
  }

  /**
   * How the voice's clean-up job ended: polled, since Bull's finished() can miss an end that comes
   * before its event subscription is ready. A completed job is removed (removeOnComplete).
   */
  async function outcome(id: string): Promise<'failed' | 'completed'> {
    for (;;) {
      const job = await queue.getJob(`cleanup:${id}`);
      if (!job) return 'completed';
      if (await job.isFailed()) return 'failed';
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Failed removals counted so far, and the seconds until the next try. */
  async function removalOf(id: string): Promise<{ attempts: number; wait: number }> {
    const rows = await ds.query<{ attempts: number; wait: number }[]>(
      `SELECT sample_removal_attempts AS attempts,
              extract(epoch FROM sample_removal_due_at - now())::float8 AS wait
         FROM voices WHERE id = $1`,
      [id],
    );
    return rows[0];
  }

  it('runs the clean-up the sweep schedules again after the first job failed for good', async () => {
    const { id, path } = await deletedVoiceWithSample();
    next = 'fail';
    await capacity.scheduleCleanup(id);
    expect(await outcome(id)).toBe('failed');
    expect(existsSync(path)).toBe(true);

    // The failed job still holds its id in Redis; the voice row still says the sample is pending.
    next = 'run';
    expect(await sweeper.sweepCleanups()).toBeGreaterThanOrEqual(1);
    expect(await outcome(id)).toBe('completed');

    expect(runs).toEqual(['fail', 'run']);
    expect(existsSync(path)).toBe(false);
    expect((await voices.findById(id))?.sampleRemovalPending).toBe(false);
    expect(await cleanups.sampleRemovalsDue(100)).not.toContain(id);
  });

  it('keeps a refused removal pending with a back-off, and removes the sample when it has passed', async () => {
    runs.length = 0;
    const { id, path } = await deletedVoiceWithSample();
    // Storage refuses: the sample's path is a folder that is not empty (rm without recursive).
    rmSync(path);
    mkdirSync(path);
    writeFileSync(join(path, 'held'), 'x');

    await capacity.cleanup(id);
    const row = await removalOf(id);
    expect(row.attempts).toBe(1);
    // The first back-off is one clean-up sweep period.
    expect(row.wait).toBeGreaterThan(0);
    expect(row.wait).toBeLessThanOrEqual(config.SCHEDULER_TICK_SECONDS * 3);
    expect((await voices.findById(id))?.sampleRemovalPending).toBe(true);
    expect(await cleanups.sampleRemovalsDue(100)).not.toContain(id);

    await capacity.cleanup(id);
    const again = await removalOf(id);
    expect(again.attempts).toBe(2);
    expect(again.wait).toBeGreaterThan(config.SCHEDULER_TICK_SECONDS * 3);

    // Storage recovers and the back-off passes (moved into the past rather than waited for).
    rmSync(path, { recursive: true });
    writeFileSync(path, 'RIFF');
    await ds.query(
      `UPDATE voices SET sample_removal_due_at = now() - interval '1 second' WHERE id = $1`,
      [id],
    );
    expect(await sweeper.sweepCleanups()).toBeGreaterThanOrEqual(1);
    expect(await outcome(id)).toBe('completed');

    expect(runs).toEqual(['run']);
    expect(existsSync(path)).toBe(false);
    expect((await voices.findById(id))?.sampleRemovalPending).toBe(false);
  });
});
