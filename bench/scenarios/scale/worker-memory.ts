import { performance } from 'node:perf_hooks';
import { progress, rssMiB, sleep, waitUntil } from '../../lib/common';
import {
  insertQueued,
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  writeSample,
  waitForAccountLimit,
} from '../../lib/world';

/** A worker-only process draining allocations queued by a scheduler-only process. */
export async function workerMemory(warmBatch: number, batch: number) {
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: 0,
    voiceLimit: { elevenlabs: 1_000_000, cartesia: 1_000_000 },
  });
  try {
    const env = { ...sandboxEnv(sandbox), CARTESIA_SLOT_LIMIT: '1000000' };
    progress('scale: starting a scheduler-only and a worker-only process');
    await startService(world, { ...env, APP_ROLES: 'scheduler' });
    const worker = await startService(world, { ...env, APP_ROLES: 'worker' });
    const pid = worker.pid;
    if (!pid) throw new Error('no worker pid');
    await waitForAccountLimit(world, 1_000_000);
    const sampleBytes = writeSample(world.storageDir);
    const series: { t: number; rssMiB: number; ready: number }[] = [];
    const t0 = performance.now();
    const drain = async (prefix: string, count: number) => {
      await world.db((c) =>
        insertQueued(c, {
          count,
          provider: 'elevenlabs',
          users: 100,
          userPrefix: prefix,
          sampleBytes,
        }),
      );
      let lastReport = performance.now();
      await waitUntil(
        `${count} allocations`,
        () =>
          world.db(async (c) => {
            const { rows } = await c.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM voices WHERE status = 'ready' AND user_id LIKE $1`,
              [`${prefix}%`],
            );
            series.push({
              t: Number(((performance.now() - t0) / 1000).toFixed(1)),
              rssMiB: rssMiB(pid),
              ready: rows[0].n,
            });
            if (performance.now() - lastReport > 5000) {
              lastReport = performance.now();
              progress(`scale: ${rows[0].n}/${count} allocated, worker RSS ${rssMiB(pid)} MiB`);
            }
            return rows[0].n >= count ? true : undefined;
          }),
        900_000,
        1000,
      );
    };
    progress(`scale: warm-up, ${warmBatch} allocations`);
    await drain('warm-', warmBatch);
    await sleep(3000);
    const beforeMiB = rssMiB(pid);
    progress(`scale: draining ${batch} allocations`);
    const drainStart = performance.now();
    await drain('big-', batch);
    const drainSeconds = (performance.now() - drainStart) / 1000;
    await sleep(3000);
    const afterMiB = rssMiB(pid);
    return {
      beforeMiB,
      afterMiB,
      peakMiB: Math.max(...series.map((s) => s.rssMiB)),
      batch,
      drainSeconds: Number(drainSeconds.toFixed(1)),
      allocationsPerSecond: Number((batch / drainSeconds).toFixed(1)),
      series,
    };
  } finally {
    await dispose();
    await close();
  }
}
