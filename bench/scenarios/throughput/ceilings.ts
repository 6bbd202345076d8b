import Bull from 'bull';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import type { TestWorld } from '../../../test/support/service';
import { onCleanup, progress, REDIS_URL, round, spawnScript } from '../../lib/common';
import { SAMPLE_KEY } from '../../lib/world';

/** The service's allocation concurrency per provider queue (WORKER_ALLOCATION_CONCURRENCY). */
export const WORKER_CONCURRENCY = 8;
/** The service's Postgres pool per process (DB_POOL_SIZE default). */
export const PG_POOL = 20;

/** Runs bench/floor.ts against the world's database, Redis and the same sandbox. */
export async function runFloor(
  world: TestWorld,
  sandboxUrl: string,
  o: { warm: number; count: number; commitsPerAllocation: number },
): Promise<{
  allocations: number;
  commits: number;
  seconds: number;
  cpuMs: number;
  kernelMs: number;
}> {
  const { child, output, exited } = spawnScript('bench/floor.ts', {
    DATABASE_URL: world.databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: `${world.queuePrefix}-floor`,
    SANDBOX_URL: sandboxUrl,
    SAMPLE_PATH: join(world.storageDir, SAMPLE_KEY),
    WARM: String(o.warm),
    COUNT: String(o.count),
    COMMITS_PER_ALLOCATION: String(o.commitsPerAllocation),
    CONCURRENCY: String(WORKER_CONCURRENCY),
    POOL: String(PG_POOL),
  });
  const stop = onCleanup('floor', async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  const code = await exited;
  await stop();
  const last = output().trim().split('\n').pop() ?? '';
  if (code !== 0) throw new Error(`bench/floor.ts exited with ${code}: ${output()}`);
  return JSON.parse(last) as {
    allocations: number;
    commits: number;
    seconds: number;
    cpuMs: number;
    kernelMs: number;
  };
}

export async function bullCeiling(
  prefix: string,
  jobs: number,
): Promise<{ jobs: number; seconds: number; perSecond: number; addPerSecond: number }> {
  const queue = new Bull('bench-noop', REDIS_URL, { prefix });
  try {
    await queue.isReady();
    const addStart = performance.now();
    for (let i = 0; i < jobs; i += 1000) {
      await queue.addBulk(
        Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => ({
          name: 'noop',
          data: { i: i + k },
          opts: { removeOnComplete: true },
        })),
      );
    }
    const addSeconds = (performance.now() - addStart) / 1000;
    let done = 0;
    const finished = new Promise<void>((resolve) =>
      queue.on('completed', () => {
        if (++done === jobs) resolve();
      }),
    );
    const start = performance.now();
    void queue.process('noop', WORKER_CONCURRENCY, () => Promise.resolve());
    await finished;
    const seconds = (performance.now() - start) / 1000;
    return {
      jobs,
      seconds: round(seconds, 3),
      perSecond: round(jobs / seconds, 1),
      addPerSecond: round(jobs / addSeconds, 1),
    };
  } finally {
    await queue.close();
  }
}

export async function pgCeiling(
  databaseUrl: string,
  seconds: number,
): Promise<{ commits: number; seconds: number; perSecond: number; pool: number }> {
  const pool = new Pool({ connectionString: databaseUrl, max: PG_POOL });
  // A connection still closing when the world drops its database (DROP DATABASE ... WITH FORCE)
  // is terminated by the server; without a listener that error would crash the whole run.
  pool.on('error', (err) =>
    progress(`throughput: ceiling pool connection closed (${err.message})`),
  );
  try {
    await pool.query(
      `CREATE TABLE bench_commits (id bigserial PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())`,
    );
    const run = async (ms: number) => {
      let commits = 0;
      const deadline = performance.now() + ms;
      await Promise.all(
        Array.from({ length: PG_POOL }, async (_, w) => {
          while (performance.now() < deadline) {
            await pool.query('INSERT INTO bench_commits (v) VALUES ($1)', [w]);
            commits++;
          }
        }),
      );
      return commits;
    };
    await run(500); // connections opened, plans cached
    const start = performance.now();
    const commits = await run(seconds * 1000);
    const elapsed = (performance.now() - start) / 1000;
    return {
      commits,
      seconds: round(elapsed, 3),
      perSecond: round(commits / elapsed, 1),
      pool: PG_POOL,
    };
  } finally {
    await pool.end();
  }
}
