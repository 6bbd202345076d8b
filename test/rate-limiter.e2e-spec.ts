import { randomBytes } from 'node:crypto';
import type { HttpAdapterHost } from '@nestjs/core';
import fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { AuthedRequest } from '../src/auth/auth.guard';
import { RateLimiter, type RateLimitName } from '../src/auth/rate-limit';
import { ApiError } from '../src/common/problem';
import type { AppConfig } from '../src/config/config.module';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

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
