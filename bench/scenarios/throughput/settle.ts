import { performance } from 'node:perf_hooks';
import type { TestWorld } from '../../../test/support/service';
import { progress, sleep, waitUntil } from '../../lib/common';

/**
 * Transactions committed so far in the world's database. Postgres publishes its counters about
 * once a second, so wait for the last ones first.
 */
export async function committed(world: TestWorld): Promise<number> {
  await sleep(1_500);
  return world.db(async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()`,
    );
    return Number(rows[0].n);
  });
}

/**
 * Polls until `count` voices of users `prefix`* are ready or failed, so a failure is counted
 * rather than waited out. Returns the counts and how many polls it made (each a transaction).
 */
export async function allSettled(
  world: TestWorld,
  prefix: string,
  count: number,
  timeoutMs: number,
): Promise<{ polls: number; ready: number; failed: number }> {
  let lastReport = performance.now();
  let polls = 0;
  const counts = await waitUntil(
    `${count} voices of ${prefix}* ready or failed`,
    () =>
      world.db(async (c) => {
        polls++;
        const { rows } = await c.query<{ ready: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE status = 'ready')::int AS ready,
                  count(*) FILTER (WHERE status = 'failed')::int AS failed
             FROM voices WHERE user_id LIKE $1`,
          [`${prefix}%`],
        );
        if (performance.now() - lastReport > 3000) {
          lastReport = performance.now();
          progress(`throughput: ${rows[0].ready}/${count} ready, ${rows[0].failed} failed`);
        }
        return rows[0].ready + rows[0].failed >= count ? rows[0] : undefined;
      }),
    timeoutMs,
    50,
  );
  return { polls, ...counts };
}
