import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import { makeToken } from '../../test/support/token';
import { round, onCleanup, progress, sleep, type Machine } from '../lib/common';
import { check, info, mustEqual, type Mode, type ScenarioResult } from '../lib/report';
import {
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  waitForAccountLimit,
  writeSample,
} from '../lib/world';
import { EventSource, eventVoices, Receiver } from './webhooks/load';
import { allocate, delivered, latencies } from './webhooks/measure';

/**
 * Allocation throughput under delivery load may be at least this share of the one without, and
 * the deliveries must keep pace with the events written (else the load was not being delivered).
 */
const UNCHANGED = 0.9;
const WORKER_CONCURRENCY = 8;

/**
 * Webhooks (issue 18): event committed → webhook received on a healthy local receiver, and the
 * allocation throughput with and without a steady stream of events being delivered.
 *
 * Events are voice_events rows written by the benchmark (for voices no worker touches: they are
 * `failed`), so their rate is the benchmark's to choose and independent of allocation; the
 * endpoint subscribes to voice.failed only, which the allocation runs (zero-latency sandbox) never
 * write, so their own events add no deliveries to the runs without load. The allocation runs are throughput.ts's workload
 * (voices inserted `queued`, zero-latency sandbox, ample slots), measured from the first claim to
 * the last ready; the runs alternate (without, with, without) on the same service, and the ratio
 * is taken against the mean of the two runs without, so a drift of the shared machine shows. A
 * fourth run, before the last, writes the same events as voice.reclaimed rows, which the endpoint
 * does not take: what the writes alone cost the allocation, apart from delivering them.
 */
export async function webhooks(
  mode: Mode,
  machine: Machine,
  _outDir: string,
): Promise<ScenarioResult> {
  const started = Date.now();
  const quick = mode === 'quick';
  const latencyRate = quick ? 50 : 100;
  const latencySeconds = quick ? 4 : 15;
  const loadRate = quick ? 200 : 1000;
  const allocations = quick ? 200 : 1500;
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: 0,
    voiceLimit: { elevenlabs: 100_000, cartesia: 100_000 },
  });
  const receiver = new Receiver();
  const stopReceiver = onCleanup('webhook receiver', () => receiver.stop());
  const pool = new Pool({ connectionString: world.databaseUrl, max: 4 });
  pool.on('error', (err) => progress(`webhooks: event pool connection closed (${err.message})`));
  try {
    const url = await receiver.start();
    progress('webhooks: starting the service (all roles)');
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      CARTESIA_SLOT_LIMIT: '100000',
      SCHEDULER_TICK_SECONDS: '1',
      WORKER_ALLOCATION_CONCURRENCY: String(WORKER_CONCURRENCY),
      // One endpoint takes the whole stream: a worker may send a full round to it at once.
      WEBHOOK_CONCURRENCY_PER_ENDPOINT: '32',
    });
    await waitForAccountLimit(world, 100_000);
    const admin = makeToken('bench-ops', 'admin');
    const created = await fetch(`${service.url}/v1/admin/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url, events: ['voice.failed'] }),
    });
    if (created.status !== 201) throw new Error(`endpoint not created: ${created.status}`);
    receiver.secret = ((await created.json()) as { secret: string }).secret;
    const sampleBytes = writeSample(world.storageDir);
    const voiceIds = await eventVoices(world, sampleBytes);

    progress(`webhooks: latency, ${latencyRate} events/s for ${latencySeconds} s`);
    const lat = new EventSource(pool, voiceIds);
    lat.start(latencyRate);
    await sleep(latencySeconds * 1000);
    await lat.stop();
    await delivered(receiver, lat, 60_000);
    const latency = latencies(receiver, lat);
    progress(
      `webhooks: committed → received p50 ${latency.p50} ms, p99 ${latency.p99} ms ` +
        `(${latency.count} events)`,
    );

    const warm = quick ? 100 : 300;
    progress(`webhooks: warm-up, ${warm} allocations`);
    await allocate(world, 'warm-', warm, sampleBytes);

    progress(`webhooks: allocation without deliveries (${allocations} voices)`);
    const before = await allocate(world, 'a1-', allocations, sampleBytes);
    progress(`webhooks: ${before.perSecond.toFixed(0)} allocations/s without deliveries`);

    progress(`webhooks: allocation with ${loadRate} events/s being delivered`);
    const load = new EventSource(pool, voiceIds);
    const deliveredBefore = receiver.firstSeen.size;
    load.start(loadRate);
    await sleep(2_000); // the delivery loop at its steady state before the batch goes in
    const loadedStart = performance.now();
    const deliveredAtStart = receiver.firstSeen.size;
    const during = await allocate(world, 'b-', allocations, sampleBytes);
    const loadedSeconds = (performance.now() - loadedStart) / 1000;
    const deliveredDuring = receiver.firstSeen.size - deliveredAtStart;
    await load.stop();
    await delivered(receiver, load, 120_000);
    const loadLatency = latencies(receiver, load);
    progress(
      `webhooks: ${during.perSecond.toFixed(0)} allocations/s with deliveries; ` +
        `${(deliveredDuring / loadedSeconds).toFixed(0)} deliveries/s received meanwhile; ` +
        `committed → received p50 ${loadLatency.p50} ms, p99 ${loadLatency.p99} ms`,
    );

    progress(`webhooks: allocation with ${loadRate} events/s written that no endpoint takes`);
    const silent = new EventSource(pool, voiceIds, true);
    silent.start(loadRate);
    await sleep(2_000);
    const written = await allocate(world, 'w-', allocations, sampleBytes);
    await silent.stop();
    progress(`webhooks: ${written.perSecond.toFixed(0)} allocations/s with events written only`);

    progress(`webhooks: allocation without deliveries again (${allocations} voices)`);
    const after = await allocate(world, 'a2-', allocations, sampleBytes);
    progress(`webhooks: ${after.perSecond.toFixed(0)} allocations/s without deliveries`);
    const baseline = (before.perSecond + after.perSecond) / 2;
    const ratio = during.perSecond / baseline;
    const writtenRatio = written.perSecond / baseline;

    const sent = lat.committedAt.size + load.committedAt.size;
    const uniqueDelivered = receiver.firstSeen.size;
    const duplicates = receiver.requests - receiver.badSignatures - uniqueDelivered;
    const failedDeliveries = await world.db(async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status <> 'delivered'`,
      );
      return rows[0].n;
    });
    const ready = before.ready + during.ready + written.ready + after.ready;
    await service.stop();

    return {
      scenario: 'webhooks',
      mode,
      startedAt: new Date(started).toISOString(),
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      params: {
        latencyEventsPerSecond: latencyRate,
        latencySeconds,
        loadEventsPerSecond: loadRate,
        allocationsPerRun: allocations,
        warmUpAllocations: warm,
        endpoints: 1,
        webhookConcurrencyPerEndpoint: 32,
        workerAllocationConcurrency: WORKER_CONCURRENCY,
        sandboxLatencyMs: 0,
        receiver: 'local node:http server verifying each signature (standardwebhooks), 204',
      },
      results: {
        latency: {
          ...latency,
          measuredFrom:
            'the INSERT of the voice_events row acknowledged (commit) to the first request ' +
            'with its webhook-id at the receiver, both on the benchmark process clock',
        },
        latencyUnderLoad: loadLatency,
        allocation: {
          withoutBefore: before,
          withDeliveries: during,
          withEventsWrittenOnly: written,
          withoutAfter: after,
          ratio: round(ratio, 3),
          ratioEventsWrittenOnly: round(writtenRatio, 3),
          deliveriesPerSecondDuringLoadedRun: round(deliveredDuring / loadedSeconds, 1),
          loadedRunSeconds: round(loadedSeconds, 2),
        },
        correctness: {
          eventsCommitted: sent,
          delivered: uniqueDelivered,
          duplicateRequests: duplicates,
          badSignatures: receiver.badSignatures,
          deliveriesNotDelivered: failedDeliveries,
          eventWriteErrors: lat.errors + load.errors + silent.errors,
          allocationsReady: ready,
          deliveredBeforeLoad: deliveredBefore,
        },
      },
      checks: [
        mustEqual(
          mode,
          'webhooks',
          'events delivered (each once, signature verified)',
          uniqueDelivered,
          sent,
          `${uniqueDelivered} of ${sent}`,
        ),
        mustEqual(mode, 'webhooks', 'bad signatures at the receiver', receiver.badSignatures, 0),
        mustEqual(
          mode,
          'webhooks',
          'event writes that failed',
          lat.errors + load.errors + silent.errors,
          0,
        ),
        mustEqual(mode, 'webhooks', 'deliveries not delivered', failedDeliveries, 0),
        mustEqual(
          mode,
          'webhooks',
          'voices ready in the allocation runs',
          ready,
          4 * allocations,
          `${ready} of ${4 * allocations}`,
        ),
        info(
          'webhooks',
          `allocations/s with ${loadRate} events/s written but not delivered ÷ without`,
          round(writtenRatio, 3),
          `${writtenRatio.toFixed(2)} (${written.perSecond.toFixed(0)}/s): what writing the ` +
            `events costs the allocation on this machine before anything is delivered`,
        ),
        info(
          'webhooks',
          'event committed → webhook received, p50 (healthy local receiver)',
          latency.p50,
          `${latency.p50} ms (${latency.count} events at ${latencyRate}/s)`,
        ),
        info(
          'webhooks',
          'event committed → webhook received, p99 (healthy local receiver)',
          latency.p99,
          `${latency.p99} ms`,
        ),
        info(
          'webhooks',
          `event committed → webhook received under ${loadRate} events/s, p50 / p99`,
          loadLatency.p50,
          `${loadLatency.p50} / ${loadLatency.p99} ms`,
        ),
        check(mode, {
          scenario: 'webhooks',
          metric: `deliveries received/s during the loaded allocation run ÷ events/s written`,
          value: round(deliveredDuring / loadedSeconds / loadRate, 3),
          display:
            `${(deliveredDuring / loadedSeconds / loadRate).toFixed(2)} ` +
            `(${(deliveredDuring / loadedSeconds).toFixed(0)}/s of ${loadRate}/s)`,
          comparator: '>=',
          threshold: UNCHANGED,
        }),
        check(mode, {
          scenario: 'webhooks',
          metric: `allocations/s with ${loadRate} events/s delivered ÷ without (mean of before and after)`,
          value: round(ratio, 3),
          display:
            `${ratio.toFixed(2)} (${during.perSecond.toFixed(0)}/s vs ${before.perSecond.toFixed(0)}/s ` +
            `and ${after.perSecond.toFixed(0)}/s; ${(deliveredDuring / loadedSeconds).toFixed(0)} deliveries/s meanwhile)`,
          comparator: '>=',
          threshold: UNCHANGED,
        }),
      ],
    };
  } finally {
    await pool.end();
    await stopReceiver();
    await dispose();
    await close();
  }
}
