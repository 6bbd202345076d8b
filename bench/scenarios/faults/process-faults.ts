import type { Processes } from '../../../test/support/cluster';
import type { PrivatePostgres } from '../../../test/support/postgres-server';
import type { PrivateRedis } from '../../../test/support/redis-server';
import type { ServiceProcess } from '../../../test/support/service';
import { progress, sleep } from '../../lib/common';
import type { PlannedFault, ProcessFault } from './plan';

/**
 * Runs the process faults on their plan: `workers` is the live list, changed in place as workers
 * are killed and replaced. Returns the count per kind and the replacements still starting.
 */
export async function injectProcessFaults(o: {
  plan: PlannedFault[];
  chaosStart: number;
  random: () => number;
  workers: ServiceProcess[];
  procs: Processes;
  env: Record<string, string>;
  redis: PrivateRedis;
  pg: PrivatePostgres;
  leaseSeconds: number;
}): Promise<{ processFaults: Record<ProcessFault, number>; starting: Promise<unknown>[] }> {
  const { chaosStart, random, workers, procs, env, redis, pg, leaseSeconds } = o;
  const processFaults: Record<ProcessFault, number> = {
    sigkill: 0,
    sigstop: 0,
    redisRestart: 0,
    postgresRestart: 0,
  };
  const starting: Promise<unknown>[] = [];
  const frozen = new Set<ServiceProcess>();
  for (const f of o.plan) {
    const wait = chaosStart + f.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    const alive = workers.filter((w) => !frozen.has(w));
    switch (f.kind) {
      case 'sigkill': {
        if (alive.length < 2) continue;
        const victim = alive[Math.floor(random() * alive.length)];
        workers.splice(workers.indexOf(victim), 1);
        await victim.stop('SIGKILL');
        starting.push(
          procs
            .start({ ...env, APP_ROLES: 'worker' }, 120_000)
            .then((w) => workers.push(w))
            .catch((err: unknown) =>
              progress(`faults: a replacement worker failed: ${String(err)}`),
            ),
        );
        break;
      }
      case 'sigstop': {
        if (alive.length < 2) continue;
        const victim = alive[Math.floor(random() * alive.length)];
        victim.signal('SIGSTOP');
        frozen.add(victim);
        // Past its lease, then resumed: a stale worker whose transitions must be refused.
        setTimeout(
          () => {
            victim.signal('SIGCONT');
            frozen.delete(victim);
          },
          (leaseSeconds + 3) * 1000,
        );
        break;
      }
      case 'redisRestart':
        await redis.restart();
        break;
      case 'postgresRestart':
        await pg.restart();
        break;
    }
    processFaults[f.kind]++;
    progress(`faults: ${((Date.now() - chaosStart) / 1000).toFixed(0)} s: ${f.kind}`);
  }
  return { processFaults, starting };
}
