import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import { Webhook } from 'standardwebhooks';
import type { TestWorld } from '../../test/support/service';
import { makeToken } from '../../test/support/token';
import {
  distribution,
  onCleanup,
  progress,
  sleep,
  waitUntil,
  type Distribution,
  type Machine,
} from '../lib/common';
import { check, info, mustEqual, type Mode, type ScenarioResult } from '../lib/report';
import {
  insertQueued,
  openSandbox,
  openWorld,
  sandboxEnv,
  startService,
  waitForAccountLimit,
  writeSample,
} from '../lib/world';

/**
 * Allocation throughput under delivery load may be at least this share of the one without, and
 * the deliveries must keep pace with the events written (else the load was not being delivered).
 */
const UNCHANGED = 0.9;
const WORKER_CONCURRENCY = 8;

/**
 * A receiver as an app runs it: verifies each delivery's signature with the standardwebhooks
 * library and notes when each webhook-id first arrived (performance.now(), the same clock as the
 * commits the benchmark times).
 */
class Receiver {
  secret = '';
  readonly firstSeen = new Map<string, number>();
  requests = 0;
  badSignatures = 0;
  private server: Server | null = null;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = performance.now();
        this.requests++;
        const id = String(req.headers['webhook-id']);
        try {
          new Webhook(this.secret).verify(Buffer.concat(chunks).toString('utf8'), {
            'webhook-id': id,
            'webhook-timestamp': String(req.headers['webhook-timestamp']),
            'webhook-signature': String(req.headers['webhook-signature']),
          });
          if (!this.firstSeen.has(id)) this.firstSeen.set(id, at);
          res.writeHead(204).end();
        } catch {
          this.badSignatures++;
          res.writeHead(400).end();
        }
      });
    });
    const server = this.server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
}

/**
 * Writes voice.failed events as a transition would (a voice_events row; the outbox trigger fans
 * it out to the endpoint in the same statement) at a steady rate, and notes when each commit was
 * acknowledged: the start of "event committed → webhook received".
 */
class EventSource {
  readonly committedAt = new Map<string, number>();
  errors = 0;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly voiceIds: string[],
  ) {}

  start(perSecond: number): void {
    this.running = true;
    // Batches every 10 ms at high rates (one statement, one commit each), single rows below.
    const perBatch = Math.max(1, Math.round(perSecond / 100));
    const everyMs = (1000 * perBatch) / perSecond;
    this.loop = (async () => {
      const t0 = performance.now();
      let batches = 0;
      let k = 0;
      while (this.running) {
        const ids = Array.from(
          { length: perBatch },
          () => this.voiceIds[k++ % this.voiceIds.length],
        );
        try {
          const { rows } = await this.pool.query<{ id: string }>(
            `INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
             SELECT v, 'failed', 'provider_fatal', 'allocating', 'failed' FROM unnest($1::uuid[]) v
             RETURNING id::text`,
            [ids],
          );
          const at = performance.now();
          for (const r of rows) this.committedAt.set(`evt_${r.id}`, at);
        } catch {
          this.errors++;
        }
        batches++;
        const wait = t0 + batches * everyMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

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
 * is taken against the mean of the two runs without, so a drift of the shared machine shows.
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

    progress(`webhooks: allocation without deliveries again (${allocations} voices)`);
    const after = await allocate(world, 'a2-', allocations, sampleBytes);
    progress(`webhooks: ${after.perSecond.toFixed(0)} allocations/s without deliveries`);
    const baseline = (before.perSecond + after.perSecond) / 2;
    const ratio = during.perSecond / baseline;

    const sent = lat.committedAt.size + load.committedAt.size;
    const uniqueDelivered = receiver.firstSeen.size;
    const duplicates = receiver.requests - receiver.badSignatures - uniqueDelivered;
    const failedDeliveries = await world.db(async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status <> 'delivered'`,
      );
      return rows[0].n;
    });
    const ready = before.ready + during.ready + after.ready;
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
          withoutAfter: after,
          ratio: round(ratio, 3),
          deliveriesPerSecondDuringLoadedRun: round(deliveredDuring / loadedSeconds, 1),
          loadedRunSeconds: round(loadedSeconds, 2),
        },
        correctness: {
          eventsCommitted: sent,
          delivered: uniqueDelivered,
          duplicateRequests: duplicates,
          badSignatures: receiver.badSignatures,
          deliveriesNotDelivered: failedDeliveries,
          eventWriteErrors: lat.errors + load.errors,
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
        mustEqual(mode, 'webhooks', 'deliveries not delivered', failedDeliveries, 0),
        mustEqual(
          mode,
          'webhooks',
          'voices ready in the allocation runs',
          ready,
          3 * allocations,
          `${ready} of ${3 * allocations}`,
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

const round = (v: number, digits: number) => Number(v.toFixed(digits));

/** Voices the events are about: `failed`, so no worker ever picks them up. */
async function eventVoices(world: TestWorld, sampleBytes: number): Promise<string[]> {
  return world.db(async (c) => {
    await insertQueued(c, {
      count: 100,
      provider: 'cartesia',
      users: 10,
      userPrefix: 'events-',
      sampleBytes,
    });
    const { rows } = await c.query<{ id: string }>(
      `UPDATE voices SET status = 'failed' WHERE user_id LIKE 'events-%' RETURNING id`,
    );
    return rows.map((r) => r.id);
  });
}

async function delivered(receiver: Receiver, source: EventSource, timeoutMs: number) {
  await waitUntil(
    'every event delivered',
    () =>
      Promise.resolve(
        [...source.committedAt.keys()].every((id) => receiver.firstSeen.has(id)) ? true : undefined,
      ),
    timeoutMs,
    100,
  ).catch(() => undefined); // counted by the correctness check instead
}

function latencies(receiver: Receiver, source: EventSource): Distribution & { count: number } {
  const values: number[] = [];
  for (const [id, at] of source.committedAt) {
    const got = receiver.firstSeen.get(id);
    if (got !== undefined) values.push(got - at);
  }
  return { ...distribution(values, 1), count: values.length };
}

/** Inserts `count` queued voices and waits until all are ready or failed: throughput.ts's measure. */
async function allocate(
  world: TestWorld,
  prefix: string,
  count: number,
  sampleBytes: number,
): Promise<{ perSecond: number; seconds: number; ready: number; failed: number }> {
  await world.db((c) =>
    insertQueued(c, { count, provider: 'elevenlabs', users: 50, userPrefix: prefix, sampleBytes }),
  );
  const counts = await waitUntil(
    `${count} voices of ${prefix}* settled`,
    () =>
      world.db(async (c) => {
        const { rows } = await c.query<{ ready: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE status = 'ready')::int AS ready,
                  count(*) FILTER (WHERE status = 'failed')::int AS failed
             FROM voices WHERE user_id LIKE $1`,
          [`${prefix}%`],
        );
        return rows[0].ready + rows[0].failed >= count ? rows[0] : undefined;
      }),
    600_000,
    100,
  );
  const span = await world.db(async (c) => {
    const { rows } = await c.query<{ seconds: number }>(
      `SELECT EXTRACT(EPOCH FROM max(e.created_at) FILTER (WHERE e.type = 'ready')
                              - min(e.created_at) FILTER (WHERE e.type = 'claimed'))::float8 AS seconds
         FROM voice_events e JOIN voices v ON v.id = e.voice_id WHERE v.user_id LIKE $1`,
      [`${prefix}%`],
    );
    return rows[0].seconds;
  });
  return {
    perSecond: round(count / span, 1),
    seconds: round(span, 3),
    ready: counts.ready,
    failed: counts.failed,
  };
}
