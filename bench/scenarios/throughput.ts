import { performance } from 'node:perf_hooks';
import {
  cpuMs,
  cpuMsOf,
  cpuSplitMs,
  machineCpuMs,
  progress,
  round,
  type Machine,
} from '../lib/common';
import { check, info, mustEqual, type Mode, type ScenarioResult } from '../lib/report';
import {
  insertQueued,
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  writeSample,
  waitForAccountLimit,
} from '../lib/world';

import {
  bullCeiling,
  PG_POOL,
  pgCeiling,
  runFloor,
  WORKER_CONCURRENCY,
} from './throughput/ceilings';
import { allSettled, committed } from './throughput/settle';

/** The service's CPU per allocation may be at most this many times the floor's. */
const FLOOR_FACTOR = 2;

/**
 * Scenario 1: N voices inserted straight into `queued` go through dispatch and allocation against
 * a zero-latency sandbox with ample slots; beside it, in the same run on the same servers, the
 * floor (bench/floor.ts: the same primitive I/O per allocation without the framework) and the
 * ceilings of the two things every allocation is made of: Bull jobs and Postgres commits.
 */
export async function throughput(
  mode: Mode,
  machine: Machine,
  _outDir: string,
): Promise<ScenarioResult> {
  const started = Date.now();
  const n = mode === 'quick' ? 300 : 3000;
  const bullJobs = mode === 'quick' ? 2000 : 10000;
  const pgSeconds = mode === 'quick' ? 2 : 5;
  // Long enough for a slow shared machine, short enough that a stuck allocation fails CI soon.
  const readyTimeoutMs = mode === 'quick' ? 180_000 : 600_000;
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: 0,
    voiceLimit: { elevenlabs: 100_000, cartesia: 100_000 },
  });
  try {
    progress(`throughput: starting the service (all roles) for ${n} allocations`);
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      CARTESIA_SLOT_LIMIT: '100000',
      SCHEDULER_TICK_SECONDS: '1',
      WORKER_ALLOCATION_CONCURRENCY: String(WORKER_CONCURRENCY),
    });
    // The ElevenLabs limit comes from the account, read once at start.
    await waitForAccountLimit(world, 100_000);
    const sampleBytes = writeSample(world.storageDir);
    // A warm-up batch first: the service's first allocations pay for lazy module loading and JIT.
    const warm = Math.max(100, Math.round(n / 10));
    progress(`throughput: warm-up, ${warm} allocations`);
    await world.db((c) =>
      insertQueued(c, {
        count: warm,
        provider: 'elevenlabs',
        users: 50,
        userPrefix: 'warm-',
        sampleBytes,
      }),
    );
    await allSettled(world, 'warm-', warm, readyTimeoutMs);
    const commits0 = await committed(world);
    const insertedAt = performance.now();
    const cpu0 = {
      service: cpuMs(service.pid ?? 0),
      serviceSystem: cpuSplitMs(service.pid ?? 0).system,
      bench: cpuMs(process.pid),
      postgres: cpuMsOf(['postgres']),
      redis: cpuMsOf(['redis-server']),
      machine: machineCpuMs(),
    };
    await world.db((c) =>
      insertQueued(c, {
        count: n,
        provider: 'elevenlabs',
        users: 50,
        userPrefix: 'tp-',
        sampleBytes,
      }),
    );
    progress(
      `throughput: ${n} voices queued; waiting for the scheduler's dispatch and the workers`,
    );
    const settled = await allSettled(world, 'tp-', n, readyTimeoutMs);
    const polls = settled.polls;
    const wallSeconds = (performance.now() - insertedAt) / 1000;
    const m1 = machineCpuMs();
    const cpu = {
      serviceMsPerAllocation: round((cpuMs(service.pid ?? 0) - cpu0.service) / n, 2),
      serviceKernelMsPerAllocation: round(
        (cpuSplitMs(service.pid ?? 0).system - cpu0.serviceSystem) / n,
        2,
      ),
      benchProcessMsPerAllocation: round((cpuMs(process.pid) - cpu0.bench) / n, 2),
      postgresMsPerAllocation: round((cpuMsOf(['postgres']) - cpu0.postgres) / n, 2),
      redisMsPerAllocation: round((cpuMsOf(['redis-server']) - cpu0.redis) / n, 2),
      machineMsPerAllocation: round((m1.busy - cpu0.machine.busy) / n, 2),
      machineBusyPercent: round(
        (100 * (m1.busy - cpu0.machine.busy)) / (m1.total - cpu0.machine.total),
        1,
      ),
      note:
        'bench process = provider sandbox + polling; postgres = all backends (incl. WAL writer); ' +
        'machine = all cores, everything running',
    };
    // Transactions committed in the service's database per allocation, without the benchmark's
    // own polling and the insert: the "about one commit" of the target, counted.
    const commitsPerAllocation = round(((await committed(world)) - commits0 - polls - 1) / n, 2);
    const remoteIds = await world.db(async (c) => {
      const { rows } = await c.query<{ remote_voice_id: string | null }>(
        `SELECT remote_voice_id FROM voices WHERE user_id LIKE 'tp-%' AND status = 'ready'`,
      );
      return rows.map((r) => r.remote_voice_id);
    });
    const events = await world.db(async (c) => {
      const { rows } = await c.query<{ first_claim: Date; last_ready: Date; claims: number }>(
        `SELECT min(e.created_at) FILTER (WHERE e.type = 'claimed') AS first_claim,
                max(e.created_at) FILTER (WHERE e.type = 'ready') AS last_ready,
                count(*) FILTER (WHERE e.type = 'claimed')::int AS claims
           FROM voice_events e JOIN voices v ON v.id = e.voice_id WHERE v.user_id LIKE 'tp-%'`,
      );
      return rows[0];
    });
    const allocSeconds = (events.last_ready.getTime() - events.first_claim.getTime()) / 1000;
    const allocPerSecond = n / allocSeconds;
    const state = sandbox.state().elevenlabs;
    // Every ready voice names its own voice alive at the provider: none shared, none missing.
    const live = new Set(state.voices.map((v) => v.id));
    const backedByLiveVoice = new Set(remoteIds.filter((r) => r !== null && live.has(r))).size;
    progress(
      `throughput: ${n} allocations in ${allocSeconds.toFixed(2)} s = ${allocPerSecond.toFixed(0)}/s ` +
        `(first claim → last ready; ${wallSeconds.toFixed(2)} s from insert); CPU per allocation: ` +
        `service ${cpu.serviceMsPerAllocation} ms (kernel ${cpu.serviceKernelMsPerAllocation}), sandbox ${cpu.benchProcessMsPerAllocation} ms, ` +
        `postgres ${cpu.postgresMsPerAllocation} ms, redis ${cpu.redisMsPerAllocation} ms, ` +
        `machine ${cpu.machineMsPerAllocation} ms (${cpu.machineBusyPercent}% busy)`,
    );
    await service.stop();

    progress(`throughput: floor, ${n} allocations of bare I/O (bench/floor.ts)`);
    const floor = await runFloor(world, sandbox.baseUrl('elevenlabs'), {
      warm,
      count: n,
      commitsPerAllocation,
    });
    const floorMsPerAllocation = round(floor.cpuMs / n, 2);
    const floorRatio = cpu.serviceMsPerAllocation / floorMsPerAllocation;
    progress(
      `throughput: floor ${floorMsPerAllocation} ms CPU per allocation (${floor.commits} commits, ` +
        `${(n / floor.seconds).toFixed(0)}/s); service ÷ floor ${floorRatio.toFixed(2)}`,
    );

    progress(
      `throughput: Bull ceiling, ${bullJobs} no-op jobs at concurrency ${WORKER_CONCURRENCY}`,
    );
    const bull = await bullCeiling(world.queuePrefix, bullJobs);
    progress(
      `throughput: Bull ${bull.perSecond.toFixed(0)} jobs/s processed (bulk add ${bull.addPerSecond.toFixed(0)}/s)`,
    );
    progress(`throughput: Postgres ceiling, single-row commits on a pool of ${PG_POOL}`);
    const pg = await pgCeiling(world.databaseUrl, pgSeconds);
    progress(`throughput: Postgres ${pg.perSecond.toFixed(0)} commits/s`);

    const pgRatio = allocPerSecond / pg.perSecond;
    const bullRatio = allocPerSecond / bull.perSecond;
    return {
      scenario: 'throughput',
      mode,
      startedAt: new Date(started).toISOString(),
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      params: {
        voices: n,
        warmUpVoices: warm,
        users: 50,
        sandboxLatencyMs: 0,
        slotLimit: 100_000,
        schedulerTickSeconds: 1,
        bullJobs,
        bullConcurrency: WORKER_CONCURRENCY,
        pgPool: PG_POOL,
        pgSeconds,
      },
      results: {
        allocation: {
          voices: n,
          seconds: round(allocSeconds, 3),
          perSecond: round(allocPerSecond, 1),
          measuredFrom: 'first claimed event to last ready event (voice_events.created_at)',
          secondsFromInsert: round(wallSeconds, 3),
          perSecondFromInsert: round(n / wallSeconds, 1),
          claims: events.claims,
          sandboxCreates: state.createCount - warm,
          cpu,
          commitsPerAllocation,
          duplicateKeys: state.duplicateKeys.length,
        },
        floor: {
          ...floor,
          msPerAllocation: floorMsPerAllocation,
          kernelMsPerAllocation: round(floor.kernelMs / n, 2),
          what:
            'bench/floor.ts: per allocation one Bull job (concurrency 8) reading the sample, one ' +
            'multipart POST to the same sandbox over undici, single-row commits at the rate the ' +
            'service made them; CPU of its own process over the measured allocations',
        },
        serviceOverFloor: round(floorRatio, 3),
        correctness: {
          ready: settled.ready,
          failed: settled.failed,
          backedByLiveVoice,
          duplicatesEverAlive: state.duplicatesEverAlive.length,
        },
        bullCeiling: bull,
        postgresCeiling: pg,
        ratios: { toPostgres: round(pgRatio, 3), toBull: round(bullRatio, 3) },
      },
      checks: [
        mustEqual(mode, 'throughput', 'voices ready', settled.ready, n, `${settled.ready} of ${n}`),
        mustEqual(mode, 'throughput', 'voices failed', settled.failed, 0),
        mustEqual(
          mode,
          'throughput',
          'creates at the provider (one per allocation)',
          state.createCount - warm,
          n,
          `${state.createCount - warm} for ${n} allocations`,
        ),
        mustEqual(
          mode,
          'throughput',
          'claims (one per allocation)',
          events.claims,
          n,
          `${events.claims} for ${n} allocations`,
        ),
        mustEqual(
          mode,
          'throughput',
          'ready voices backed by their own live voice at the provider',
          backedByLiveVoice,
          n,
          `${backedByLiveVoice} of ${n}`,
        ),
        mustEqual(
          mode,
          'throughput',
          'duplicates ever alive at the provider (two live voices with one key)',
          state.duplicatesEverAlive.length,
          0,
        ),
        check(mode, {
          scenario: 'throughput',
          metric: `service CPU per allocation ÷ floor (the same I/O without the framework)`,
          value: round(floorRatio, 3),
          display:
            `${floorRatio.toFixed(2)} (${cpu.serviceMsPerAllocation} ms vs ${floorMsPerAllocation} ms; ` +
            `${commitsPerAllocation} commits per allocation)`,
          comparator: '<=',
          threshold: FLOOR_FACTOR,
          target: `≤ ${FLOOR_FACTOR}`,
        }),
        info(
          'throughput',
          'allocations/s ÷ Postgres single-row commits/s (pool 20)',
          round(pgRatio, 3),
          `${pgRatio.toFixed(2)} (${allocPerSecond.toFixed(0)}/s vs ${pg.perSecond.toFixed(0)}/s)`,
        ),
        info(
          'throughput',
          'Postgres commits per allocation; CPU ms per allocation: service / sandbox / Postgres / Redis',
          commitsPerAllocation,
          `${commitsPerAllocation}; ${cpu.serviceMsPerAllocation} / ${cpu.benchProcessMsPerAllocation} / ` +
            `${cpu.postgresMsPerAllocation} / ${cpu.redisMsPerAllocation} ms`,
        ),
        info(
          'throughput',
          'allocations/s ÷ Bull no-op jobs/s (concurrency 8)',
          round(bullRatio, 3),
          `${bullRatio.toFixed(2)} (${allocPerSecond.toFixed(0)}/s vs ${bull.perSecond.toFixed(0)}/s)`,
        ),
      ],
    };
  } finally {
    await dispose();
    await close();
  }
}
