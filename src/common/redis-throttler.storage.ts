import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { Redis } from 'ioredis';
import { AppConfig } from '../config/config.module';

/**
 * One atomic step of a fixed-window counter with blocking, as @nestjs/throttler v6 defines it:
 * KEYS[1] counts hits in the window, KEYS[2] exists while the tracker is blocked (its value is the
 * hit count that caused the block). Returns {totalHits, msToExpire, blocked 0|1, msToBlockExpire}.
 *
 * - blocked: refused without counting, until the block lapses;
 * - blockDuration > 0: the hit over the limit starts a block and resets the window, so counting
 *   starts afresh when the block ends (as the in-memory storage does);
 * - blockDuration <= 0: a hit over the limit is refused and not counted, until the window ends.
 */
const INCREMENT_SCRIPT = `
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local blockLeft = redis.call('PTTL', KEYS[2])
if blockLeft > 0 then
  return {tonumber(redis.call('GET', KEYS[2]) or limit + 1), blockLeft, 1, blockLeft}
end
if block <= 0 then
  local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
  local left = redis.call('PTTL', KEYS[1])
  if seen >= limit and left > 0 then
    return {seen, left, 1, left}
  end
end
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  left = ttl
end
if block > 0 and hits > limit then
  redis.call('SET', KEYS[2], hits, 'PX', block)
  redis.call('DEL', KEYS[1])
  return {hits, left, 1, block}
end
return {hits, left, 0, 0}
`;

type IncrementReply = [number, number, number, number];
interface ThrottleCommands {
  throttleIncrement(
    hitsKey: string,
    blockKey: string,
    ttlMs: number,
    limit: number,
    blockMs: number,
  ): Promise<IncrementReply>;
}

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * Throttler storage in Redis, so a limit holds across every replica. Keys live under QUEUE_PREFIX
 * (the deployment's namespace in a shared Redis) and expire by themselves. When Redis cannot
 * answer, requests pass: a limiter outage must not become an API outage (Bull, on the same Redis,
 * would fail the request anyway if Redis were really gone).
 */
@Injectable()
export class RedisThrottlerStorage implements ThrottlerStorage, OnApplicationShutdown {
  private readonly logger = new Logger(RedisThrottlerStorage.name);
  private readonly redis: Redis & ThrottleCommands;
  private readonly prefix: string;
  private lastWarning = 0;

  constructor(config: AppConfig) {
    this.prefix = `${config.QUEUE_PREFIX}:rate`;
    const redis = new Redis(config.REDIS_URL, {
      // Fail fast rather than hold requests while Redis is away; the limiter then fails open.
      maxRetriesPerRequest: 1,
      commandTimeout: 1_000,
      connectionName: 'throttler',
    });
    redis.on('error', (err: Error) => this.warn(err));
    redis.defineCommand('throttleIncrement', { numberOfKeys: 2, lua: INCREMENT_SCRIPT });
    this.redis = redis as Redis & ThrottleCommands;
  }

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const base = `${this.prefix}:${throttlerName}:${key}`;
    try {
      const [totalHits, msToExpire, blocked, msToBlockExpire] = await this.redis.throttleIncrement(
        `${base}:hits`,
        `${base}:block`,
        ttl,
        limit,
        blockDuration,
      );
      return {
        totalHits,
        timeToExpire: seconds(msToExpire),
        isBlocked: blocked === 1,
        // At least a second, so Retry-After never tells a blocked client to retry at once.
        timeToBlockExpire: blocked === 1 ? Math.max(1, seconds(msToBlockExpire)) : 0,
      };
    } catch (err) {
      this.warn(err);
      return { totalHits: 0, timeToExpire: seconds(ttl), isBlocked: false, timeToBlockExpire: 0 };
    }
  }

  /** At most one warning a minute: a Redis outage would otherwise log once per request. */
  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarning < 60_000) return;
    this.lastWarning = now;
    this.logger.warn({ err }, 'rate-limit storage unavailable; requests are not limited meanwhile');
  }

  async onApplicationShutdown(): Promise<void> {
    // QUIT would wait for a connection that may never come.
    if (this.redis.status !== 'ready') return this.redis.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
