import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import type { HttpAdapterHost } from '@nestjs/core';
import fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { AuthedRequest } from '../src/auth/auth.guard';
import { RateLimiter, type RateLimitName } from '../src/auth/rate-limit';
import { ApiError } from '../src/common/problem';
import { QUEUED_AHEAD_SQL } from '../src/voice/queue-position.repository';
import type { AppConfig } from '../src/config/config.module';
import { ApiClient } from './support/api';
import { runBuiltScript } from './support/cluster';
import { storedFiles, voiceRows } from './support/hostile';
import { freePort, ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';
import { multipart, uploadForm } from './support/multipart';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DEV_JWT_SECRET = 'dev-only-insecure-secret-change-me';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the rate limiter on Redis', () => {
  const prefix = `vs-throttle-${randomBytes(4).toString('hex')}`;
  const limiters: { limiter: RateLimiter; app: FastifyInstance }[] = [];
  /** One replica's limiter: its own Fastify instance and Redis connection, the shared Redis. */
  const replica = async (redisUrl = REDIS) => {
    const app = fastify();
    const config = {
      QUEUE_PREFIX: prefix,
      REDIS_URL: redisUrl,
      RATE_LIMIT_UPLOADS_PER_MINUTE: 3,
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: 25,
      RATE_LIMIT_READS_PER_MINUTE: 1,
      RATE_LIMIT_WRITES_PER_MINUTE: 1,
    } as AppConfig;
    const limiter = new RateLimiter(config, {
      httpAdapter: { getInstance: () => app },
    } as unknown as HttpAdapterHost);
    await limiter.onApplicationBootstrap();
    limiters.push({ limiter, app });
    return limiter;
  };
  /** A request of `user` and the headers its answer got. */
  const request = (user: string) => {
    const headers: Record<string, string> = {};
    const reply = {
      header(name: string, value: string) {
        headers[name.toLowerCase()] = value;
        return reply;
      },
    };
    const req = { principal: { userId: user }, ip: '127.0.0.1', routeOptions: { config: {} } };
    return {
      req: req as unknown as AuthedRequest,
      reply: reply as unknown as FastifyReply,
      headers,
    };
  };
  const hit = async (limiter: RateLimiter, user: string, name: RateLimitName) => {
    const { req, reply, headers } = request(user);
    const admitted = await limiter.hit(req, reply, name).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ApiError && err.getStatus() === 429) return false;
        throw err;
      },
    );
    return { admitted, headers };
  };

  afterAll(async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    for (const { limiter, app } of limiters) {
      await limiter.onApplicationShutdown();
      await app.close();
    }
  });

  it('counts up to the limit, then refuses with Retry-After and the budget headers', async () => {
    const limiter = await replica();
    const hits = [];
    for (let i = 0; i < 3; i++) hits.push(await hit(limiter, 'u1', 'uploads'));
    expect(hits.map((h) => [h.admitted, h.headers['x-ratelimit-remaining-uploads']])).toEqual([
      [true, '2'],
      [true, '1'],
      [true, '0'],
    ]);
    expect(hits[0].headers['x-ratelimit-limit-uploads']).toBe('3');
    expect(Number(hits[0].headers['x-ratelimit-reset-uploads'])).toBe(60);
    for (let i = 0; i < 2; i++) {
      const refused = await hit(limiter, 'u1', 'uploads');
      expect(refused.admitted).toBe(false);
      expect(refused.headers['x-ratelimit-remaining-uploads']).toBe('0');
      const retryAfter = Number(refused.headers['retry-after-uploads']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
  });

  it('is atomic and shared: two replicas racing admit exactly the limit', async () => {
    const [a, b] = [await replica(), await replica()];
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => hit(i % 2 ? a : b, 'u3', 'activations')),
    );
    expect(results.filter((r) => r.admitted)).toHaveLength(25);
  });

  it('keeps limits apart per user and per budget', async () => {
    const limiter = await replica();
    expect((await hit(limiter, 'u4', 'reads')).admitted).toBe(true);
    expect((await hit(limiter, 'u4', 'reads')).admitted).toBe(false);
    expect((await hit(limiter, 'u4', 'writes')).admitted).toBe(true);
    expect((await hit(limiter, 'u5', 'reads')).admitted).toBe(true);
  });

  it('lets requests through when Redis cannot be reached', async () => {
    const limiter = await replica('redis://127.0.0.1:9');
    // A limit of one: with Redis counting, the second hit would be refused.
    for (let i = 0; i < 5; i++) expect((await hit(limiter, 'u6', 'reads')).admitted).toBe(true);
  });
});

describe('rate limits on two replicas', () => {
  const world = new TestWorld();
  let replicas: ServiceProcess[];
  const UPLOADS = 3;
  const ACTIVATIONS = 4;
  const READS = 20;
  const WRITES = 5;

  beforeAll(async () => {
    const env = {
      RATE_LIMIT_UPLOADS_PER_MINUTE: String(UPLOADS),
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: String(ACTIVATIONS),
      RATE_LIMIT_READS_PER_MINUTE: String(READS),
      RATE_LIMIT_WRITES_PER_MINUTE: String(WRITES),
      LOG_LEVEL: 'error',
    };
    // One full replica first (it migrates), then an API-only one beside it.
    const first = await world.start(env);
    replicas = [first, await world.start({ ...env, APP_ROLES: 'api' })];
  }, 60_000);

  afterAll(() => world.dispose(), 30_000);

  const as = (user: string, replica: number) => new ApiClient(replicas[replica].url, user);

  it('limits uploads per user across replicas, answering 429 rate_limited with Retry-After', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < UPLOADS; i++) statuses.push((await as('alice', i % 2).upload()).status);
    expect(statuses).toEqual([202, 202, 202]);
    const rowsBefore = (await voiceRows(world)).length;

    for (const replica of [0, 1]) {
      const limited = await as('alice', replica).upload();
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toContain('application/problem+json');
      expect(limited.body).toMatchObject({ status: 429, code: 'rate_limited' });
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // A refused upload stored nothing.
    expect((await voiceRows(world)).length).toBe(rowsBefore);
    expect(storedFiles(world)).toHaveLength(rowsBefore);

    // Another user has a budget of their own, and reads have a budget of their own.
    expect((await as('bob', 1).upload()).status).toBe(202);
    expect((await as('alice', 0).request('GET', '/v1/voices')).status).toBe(200);
  });

  it('limits activations per user across replicas, and not another user', async () => {
    const carol = as('carol', 0);
    const up = await carol.upload();
    expect(up.status).toBe(202);
    const dave = as('dave', 1);
    const daveUp = await dave.upload();
    const statuses: number[] = [];
    for (let i = 0; i < ACTIVATIONS; i++) {
      statuses.push(
        (await as('carol', i % 2).request('POST', `/v1/voices/${up.body.id}/activate`)).status,
      );
    }
    expect(statuses.every((s) => s === 200 || s === 202)).toBe(true);
    const limited = await as('carol', 1).request('POST', `/v1/voices/${up.body.id}/activate`);
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Still allowed: another user's activations, and the limited user's reads.
    const other = await dave.request('POST', `/v1/voices/${daveUp.body.id}/activate`);
    expect([200, 202]).toContain(other.status);
    expect((await carol.request('GET', `/v1/voices/${up.body.id}`)).status).toBe(200);
  });
  /** A refusal as the contract says: problem document, Retry-After, the budget's headers. */
  const expectLimited = (
    res: { status: number; headers: Headers; body: { code?: string; status?: number } },
    budget: string,
    limit: number,
  ) => {
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 429, code: 'rate_limited' });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get(`x-ratelimit-limit-${budget}`)).toBe(String(limit));
    expect(res.headers.get(`x-ratelimit-remaining-${budget}`)).toBe('0');
  };
  const someId = () => '00000000-0000-4000-8000-' + randomBytes(6).toString('hex');

  it('limits a flood of reads per user across replicas, with 429 and the reads headers', async () => {
    const erin = (replica: number) => as('erin', replica);
    const first = await erin(0).request('GET', '/v1/voices');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-reads')).toBe(String(READS));
    expect(first.headers.get('x-ratelimit-remaining-reads')).toBe(String(READS - 1));
    // Every read route spends the same budget: the list, one voice, the same on both replicas.
    const flood = await Promise.all(
      Array.from({ length: 3 * READS }, (_, i) =>
        erin(i % 2).request('GET', i % 3 ? '/v1/voices' : `/v1/voices/${someId()}`),
      ),
    );
    const admitted = flood.filter((r) => r.status !== 429);
    expect(admitted).toHaveLength(READS - 1);
    expect(admitted.every((r) => r.status === 200 || r.body.code === 'voice_not_found')).toBe(true);
    for (const r of flood.filter((x) => x.status === 429)) expectLimited(r, 'reads', READS);
    // Another user's reads are still served.
    expect((await as('fay', 1).request('GET', '/v1/voices')).status).toBe(200);
  });

  it('keeps writes and reads apart: spent writes leave reads their own budget, and back', async () => {
    const gus = (replica: number) => as('gus', replica);
    for (let i = 0; i < WRITES; i++) {
      const res = await gus(i % 2).request('DELETE', `/v1/voices/${someId()}`);
      expect([res.status, res.body.code]).toEqual([404, 'voice_not_found']);
      expect(res.headers.get('x-ratelimit-limit-writes')).toBe(String(WRITES));
    }
    expectLimited(await gus(0).request('DELETE', `/v1/voices/${someId()}`), 'writes', WRITES);
    expectLimited(await gus(1).request('DELETE', `/v1/voices/${someId()}`), 'writes', WRITES);
    // Reads: up to their own budget, no further.
    const reads = [];
    for (let i = 0; i < READS + 2; i++)
      reads.push((await gus(i % 2).request('GET', '/v1/voices')).status);
    expect(reads).toEqual([...Array<number>(READS).fill(200), 429, 429]);

    // The other way round: reads spent, writes still pass.
    const hal = as('hal', 0);
    for (let i = 0; i < READS; i++)
      expect((await hal.request('GET', '/v1/voices')).status).toBe(200);
    expectLimited(await hal.request('GET', '/v1/voices'), 'reads', READS);
    const write = await hal.request('DELETE', `/v1/voices/${someId()}`);
    expect([write.status, write.body.code]).toEqual([404, 'voice_not_found']);
  });

  it('limits admin routes too', async () => {
    const admin = (replica: number) => new ApiClient(replicas[replica].url, 'root', 'admin');
    const reads = await Promise.all(
      Array.from({ length: READS + 5 }, (_, i) =>
        admin(i % 2).request('GET', i % 2 ? '/v1/providers' : '/v1/admin/voices'),
      ),
    );
    expect(reads.filter((r) => r.status === 200)).toHaveLength(READS);
    for (const r of reads.filter((x) => x.status !== 200)) expectLimited(r, 'reads', READS);
    // The queue board spends the same budget, and refuses the same way.
    expectLimited(await admin(0).request('GET', '/admin/queues/api/queues'), 'reads', READS);
    expectLimited(await admin(1).request('GET', '/admin/queues'), 'reads', READS);
    const other = new ApiClient(replicas[0].url, 'root2', 'admin');
    expect((await other.request('GET', '/admin/queues/api/queues')).status).toBe(200);
    const writes = [];
    for (let i = 0; i < WRITES + 1; i++)
      writes.push(await admin(i % 2).request('POST', `/v1/admin/voices/${someId()}/retry`));
    expect(writes.slice(0, WRITES).map((r) => r.status)).toEqual(Array<number>(WRITES).fill(404));
    expectLimited(writes[WRITES], 'writes', WRITES);
  });
});

/** Values of one series in a Prometheus text scrape. */
const metric = (text: string, name: string, labels = ''): number[] =>
  [...text.matchAll(new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'gm'))].map(
    (m) => Number(m[1]),
  );

describe('long-polling activations', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  const PER_USER = 10;
  const PER_REPLICA = 15;
  beforeAll(async () => {
    service = await world.start({
      // No slot ever frees: every voice stays queued, every wait lasts its full waitSeconds.
      SANDBOX_VOICE_LIMIT: '0',
      LONG_POLL_MAX_PER_USER: String(PER_USER),
      LONG_POLL_MAX_PER_REPLICA: String(PER_REPLICA),
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '1000000',
      LOG_LEVEL: 'error',
    });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  const scrape = async () => (await fetch(`${service.url}/metrics`)).text();
  const waiters = async () => metric(await scrape(), 'voice_slots_activation_waiters')[0];

  /** Sends `n` waiting activations; resolves once all but `open` answered, with those answers. */
  async function flood(client: ApiClient, id: string, n: number, open: number) {
    const answers: Array<{ status: number; body: any }> = [];
    const all = Array.from({ length: n }, () =>
      client.request('POST', `/v1/voices/${id}/activate?waitSeconds=30`).then((r) => {
        answers.push(r);
        return r;
      }),
    );
    for (let i = 0; answers.length < n - open; i++) {
      if (i > 600) throw new Error(`only ${answers.length} of ${n} answered`);
      await sleep(100);
    }
    return { answeredAtOnce: [...answers], all: Promise.all(all) };
  }

  it('lets 10 of 500 from one user wait, answers the rest at once, and caps the replica', async () => {
    const alice = new ApiClient(service.url, 'alice');
    const bob = new ApiClient(service.url, 'bob');
    const a = (await alice.upload()).body.id as string;
    const b = (await bob.upload()).body.id as string;
    await alice.waitFor(a, ['queued']);
    await bob.waitFor(b, ['queued']);

    const fromAlice = await flood(alice, a, 500, PER_USER);
    expect(fromAlice.answeredAtOnce).toHaveLength(500 - PER_USER);
    for (const r of fromAlice.answeredAtOnce) {
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ id: a, status: 'queued', queue: { position: 1 } });
    }
    expect(await waiters()).toBe(PER_USER);

    // The replica's cap: bob gets what is left of it.
    const fromBob = await flood(bob, b, 50, PER_REPLICA - PER_USER);
    expect(fromBob.answeredAtOnce).toHaveLength(50 - (PER_REPLICA - PER_USER));
    expect(fromBob.answeredAtOnce.every((r) => r.status === 202)).toBe(true);
    const scraped = await scrape();
    expect(metric(scraped, 'voice_slots_activation_waiters')[0]).toBe(PER_REPLICA);
    expect(metric(scraped, 'process_resident_memory_bytes')[0]).toBeLessThan(512 * 1024 * 1024);

    // The waits end with the voices: every open request gets its answer, a problem document.
    expect((await alice.request('DELETE', `/v1/voices/${a}`)).status).toBe(202);
    expect((await bob.request('DELETE', `/v1/voices/${b}`)).status).toBe(202);
    const waited = [...(await fromAlice.all), ...(await fromBob.all)].filter(
      (r) => r.status !== 202,
    );
    expect(waited).toHaveLength(PER_REPLICA);
    for (const r of waited) expect([r.status, r.body.code]).toEqual([409, 'voice_deleted']);
    expect(await waiters()).toBe(0);
  }, 90_000);
});

describe('a deep queue', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  const DEPTH = 20_000;
  const MAX = 1000;
  beforeAll(async () => {
    service = await world.start({
      SANDBOX_VOICE_LIMIT: '0',
      QUEUE_POSITION_MAX: String(MAX),
      METRICS_REFRESH_SECONDS: '3600',
      LOG_LEVEL: 'error',
    });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('answers a queued voice with a bounded count, cheaply, and /metrics from one refresh', async () => {
    const before = await (await fetch(`${service.url}/metrics`)).text();
    const refreshedAt = metric(before, 'voice_slots_metrics_refreshed_timestamp_seconds')[0];
    const depth = metric(before, 'voice_slots_queue_depth', '{provider="elevenlabs"}')[0];
    expect(refreshedAt).toBeGreaterThan(0);

    const alice = new ApiClient(service.url, 'alice');
    const id = (await alice.upload()).body.id as string;
    const voice = await alice.waitFor(id, ['queued']);
    expect(voice.queue).toMatchObject({ position: 1, positionAtLeast: false });
    // DEPTH voices of other users, all ahead of alice's in the claim order.
    await world.db(async (c) => {
      await c.query(
        `INSERT INTO voices
         SELECT (jsonb_populate_record(v, jsonb_build_object(
                   'id', gen_random_uuid(), 'user_id', 'deep-' || i, 'name', 'deep ' || i,
                   'sample_key', 'deep/' || i, 'fair_tag', v.fair_tag - $2::int - 1 + i))).*
           FROM voices v, generate_series(0, $2::int - 1) i WHERE v.id = $1`,
        [id, DEPTH],
      );
      await c.query('ANALYZE voices');
    });

    const deep = await alice.get(id);
    expect(deep.queue).toMatchObject({ position: MAX + 1, positionAtLeast: true });
    const sixth = await new ApiClient(service.url, 'deep-5').request('GET', '/v1/voices');
    const sixthId = sixth.body.items[0].id as string;
    expect((await new ApiClient(service.url, 'deep-5').get(sixthId)).queue).toMatchObject({
      position: 6,
      positionAtLeast: false,
    });

    // The plan of the count behind that answer: it stops after MAX + 1 index entries.
    const plan = await world.db(async (c) => {
      const params = await c.query<{ fair_tag: string; queued_at: Date }>(
        'SELECT fair_tag, queued_at FROM voices WHERE id = $1',
        [id],
      );
      const { fair_tag, queued_at } = params.rows[0];
      const explain = async (sql: string, args: unknown[]) =>
        (
          await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
            `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
            args,
          )
        ).rows[0]['QUERY PLAN'][0].Plan;
      const args = ['elevenlabs', fair_tag, queued_at, id];
      return {
        bounded: await explain(QUEUED_AHEAD_SQL, [...args, MAX]),
        // What the count cost before it was bounded: every voice ahead.
        full: await explain(QUEUED_AHEAD_SQL.replace(/\s+LIMIT \$5::int \+ 1/, ''), args),
      };
    });
    const rows = (p: PlanNode): number =>
      Math.max(p['Actual Rows'] * (p['Actual Loops'] ?? 1), ...(p.Plans ?? []).map(rows));
    const buffers = (p: PlanNode) => p['Shared Hit Blocks'] + p['Shared Read Blocks'];
    expect(rows(plan.full)).toBeGreaterThanOrEqual(DEPTH);
    expect(rows(plan.bounded)).toBeLessThanOrEqual(MAX + 1);
    expect(buffers(plan.bounded) * 4).toBeLessThan(buffers(plan.full));

    // /metrics: a burst of scrapes is served from the refresh before the rows went in.
    const burst = await Promise.all(
      Array.from({ length: 30 }, async () => (await fetch(`${service.url}/metrics`)).text()),
    );
    for (const text of burst) {
      expect(metric(text, 'voice_slots_metrics_refreshed_timestamp_seconds')[0]).toBe(refreshedAt);
      expect(metric(text, 'voice_slots_queue_depth', '{provider="elevenlabs"}')[0]).toBe(depth);
    }
  }, 90_000);
});

interface PlanNode {
  'Actual Rows': number;
  'Actual Loops'?: number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
  Plans?: PlanNode[];
}

/** This machine's addresses that are not loopback (where others could reach a listener). */
const externalAddresses = (): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && a.family === 'IPv4')
    .map((a) => a!.address);

describe('the published development secret', () => {
  const world = new TestWorld();
  afterAll(() => world.dispose(), 30_000);

  it('is refused at start on a non-loopback listener, in development too', async () => {
    const port = await freePort();
    const cases: Array<[string, Record<string, string>]> = [
      ['explicitly, on 0.0.0.0', { AUTH_JWT_SECRET: DEV_JWT_SECRET, HOST: '0.0.0.0' }],
      ['by default, on ::', { AUTH_JWT_SECRET: '', HOST: '::' }],
    ];
    const runs = await Promise.all(
      cases.map(([, extra]) =>
        runBuiltScript(
          'main.js',
          { ...world.env(), NODE_ENV: 'development', PORT: String(port), ...extra },
          60_000,
        ),
      ),
    );
    runs.forEach(({ code, output }, i) => {
      const label = cases[i][0];
      expect({ label, refused: code !== null && code !== 0 }).toEqual({ label, refused: true });
      expect(output).toMatch(/AUTH_JWT_SECRET: the published development secret is refused/);
      expect(output).not.toMatch(/voice-slots listening/);
    });
    // Nothing listens, so a forged admin token has nowhere to go.
    const forged = makeToken('mallory', 'admin', { secret: DEV_JWT_SECRET });
    await expect(
      fetch(`http://127.0.0.1:${port}/v1/providers`, {
        headers: { authorization: `Bearer ${forged}` },
      }),
    ).rejects.toThrow();
  }, 80_000);

  it('keeps `npm start` working, on 127.0.0.1 only', async () => {
    const service = await world.start({ AUTH_JWT_SECRET: '', LOG_LEVEL: 'error' });
    const devAdmin = makeToken('ops', 'admin', { secret: DEV_JWT_SECRET });
    const local = await fetch(`${service.url}/v1/providers`, {
      headers: { authorization: `Bearer ${devAdmin}` },
    });
    expect(local.status).toBe(200);
    const outside = externalAddresses();
    for (const address of outside)
      await expect(
        fetch(`http://${address}:${service.port}/v1/providers`, {
          headers: { authorization: `Bearer ${devAdmin}` },
          signal: AbortSignal.timeout(3_000),
        }),
      ).rejects.toThrow();
  }, 60_000);
});

describe('an upload without a declared length', () => {
  const world = new TestWorld();
  const CAP = 1_000_000;
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await world.start({ MAX_SAMPLE_BYTES: String(CAP), LOG_LEVEL: 'error' });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('is refused soon after passing the cap, however long it goes on, leaving no file', async () => {
    const { body: head, contentType } = multipart(uploadForm(Buffer.alloc(0)), {
      terminate: false,
    });
    let sent = 0;
    const answer = await new Promise<{ status: number; body: string; sentAtAnswer: number }>(
      (resolve, reject) => {
        // No Content-Length: Node sends it chunked. The file part never ends.
        const req = http.request(`${service.url}/v1/voices`, {
          method: 'POST',
          headers: {
            'content-type': contentType,
            authorization: `Bearer ${makeToken('alice')}`,
          },
        });
        req.on('response', (res) => {
          const sentAtAnswer = sent;
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentAtAnswer }));
          res.on('error', reject);
        });
        req.on('error', () => undefined); // the service hangs up on the rest: expected
        req.write(head.subarray(0, head.length - 2));
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = (): void => {
          while (!req.destroyed && sent < 200 * CAP) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          if (!req.destroyed) reject(new Error(`sent ${sent} bytes without an answer`));
        };
        pump();
      },
    );
    expect(answer.status).toBe(413);
    expect((JSON.parse(answer.body) as { code: string }).code).toBe('sample_too_large');
    // Answered once the cap was passed, not after the client gave up (socket buffers aside).
    expect(answer.sentAtAnswer).toBeLessThan(20 * CAP);
    await new Promise((r) => setTimeout(r, 300));
    expect(storedFiles(world)).toEqual([]);
    expect(await voiceRows(world)).toEqual([]);
  }, 60_000);
});

describe('a slow upload', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await world.start({ UPLOAD_MIN_BYTES_PER_SECOND: '1000', LOG_LEVEL: 'error' });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('is cut with a clear error once a 10 s window brings less than the minimum rate', async () => {
    const { body: head, contentType } = multipart(uploadForm(Buffer.alloc(0)), {
      terminate: false,
    });
    let trickle: NodeJS.Timeout | undefined;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${service.url}/v1/voices`, {
        method: 'POST',
        headers: { 'content-type': contentType, authorization: `Bearer ${makeToken('alice')}` },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', () => undefined);
      req.write(head.subarray(0, head.length - 2));
      // 100 bytes a second: a tenth of the minimum.
      trickle = setInterval(() => req.write(Buffer.alloc(100, 1)), 1_000);
    });
    clearInterval(trickle);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'upload_too_slow', status: 408 });
    await new Promise((r) => setTimeout(r, 300));
    expect(storedFiles(world)).toEqual([]);
    expect(await voiceRows(world)).toEqual([]);
  }, 60_000);
});

describe('a production start', () => {
  const world = new TestWorld();
  afterAll(() => world.dispose(), 30_000);

  const base = () => ({ ...world.env(), NODE_ENV: 'production', PORT: '0' });

  it('is refused with a weak configuration, with a message naming the variable', async () => {
    const without = (name: string, env: Record<string, string>) => {
      const copy = { ...env };
      delete copy[name];
      return copy;
    };
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['no AUTH_JWT_SECRET', without('AUTH_JWT_SECRET', base()), /AUTH_JWT_SECRET/],
      ['the development secret', { ...base(), AUTH_JWT_SECRET: DEV_JWT_SECRET }, /AUTH_JWT_SECRET/],
      [
        'a JWKS without issuer or audience',
        { ...base(), AUTH_JWKS_URL: 'https://id.example/jwks.json' },
        /AUTH_ISSUER[\s\S]*AUTH_AUDIENCE/,
      ],
    ];
    // Side by side: each exits by itself once its configuration is read (loading takes seconds).
    const runs = await Promise.all(cases.map(([, env]) => runBuiltScript('main.js', env, 60_000)));
    runs.forEach(({ code, output }, i) => {
      const [label, , message] = cases[i];
      expect({ label, code: code === null || code === 0 ? code : 'non-zero' }).toEqual({
        label,
        code: 'non-zero',
      });
      expect(output).toMatch(message);
      expect(output).toMatch(/Invalid configuration/);
      expect(output).not.toMatch(/voice-slots listening/);
    });
  }, 80_000);

  it('does not turn the provider sandbox on by itself', async () => {
    const service = await world.start({ NODE_ENV: 'production', LOG_LEVEL: 'error' });
    const res = await new ApiClient(service.url, 'alice').upload({ provider: 'elevenlabs' });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('provider_unavailable');
    expect(storedFiles(world)).toEqual([]);
  }, 40_000);
});
