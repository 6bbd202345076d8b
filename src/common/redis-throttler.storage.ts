import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { Redis } from 'ioredis';
import { AppConfig } from '../config/config.module';
import { LruCache } from './lru-cache';

/**
 * One atomic step of a fixed-window counter with blocking, as @nestjs/throttler v6 defines it:
 * KEYS[1] counts hits in the window, KEYS[2] exists while the tracker is blocked (its value is the
 * hit count that caused the block). ARGV[4] asks for that many hits at once (a replica's local
 * reservation, see below); fewer are granted near the limit, never hits past it. Returns
 * {totalHits, msToExpire, blocked 0|1, msToBlockExpire, granted}.
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
local want = tonumber(ARGV[4])
local blockLeft = redis.call('PTTL', KEYS[2])
if blockLeft > 0 then
  return {tonumber(redis.call('GET', KEYS[2]) or limit + 1), blockLeft, 1, blockLeft, 0}
end
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
if block <= 0 then
  local left = redis.call('PTTL', KEYS[1])
  if seen >= limit and left > 0 then
    return {seen, left, 1, left, 0}
  end
end
if want > limit - seen then
  want = math.max(1, limit - seen)
end
local hits = redis.call('INCRBY', KEYS[1], want)
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  left = ttl
end
if block > 0 and hits > limit then
  redis.call('SET', KEYS[2], hits, 'PX', block)
  redis.call('DEL', KEYS[1])
  return {hits, left, 1, block, 0}
end
return {hits, left, 0, 0, want}
`;

type IncrementReply = [number, number, number, number, number];
interface ThrottleCommands {
  throttleIncrement(
    hitsKey: string,
    blockKey: string,
    ttlMs: number,
    limit: number,
    blockMs: number,
    want: number,
  ): Promise<IncrementReply>;
}

export type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * Hits reserved at once are at most this share of the limit (and MAX_BATCH): each replica may
 * hold up to that many counted-but-unused hits, so a user at the edge of the limit may be refused
 * up to (replicas × limit / BATCH_SHARE_DIVISOR) hits early, never admitted past it. Limits under
 * 2 × BATCH_SHARE_DIVISOR per window are counted one hit at a time in Redis, exactly.
 */
const BATCH_SHARE_DIVISOR = 100;
const MAX_BATCH = 256;
/** A reservation used up within this long means the tracker is busy here: the next one doubles. */
const BUSY_MS = 1_000;
/** Trackers remembered locally (recently seen users); the least recently seen go first. */
const MAX_TRACKERS = 50_000;

/** What this replica knows of one tracker's window, between trips to Redis. */
interface LocalWindow {
  /** Reserved hit numbers not yet handed out: next..last. */
  next: number;
  last: number;
  windowEndsAt: number;
  /** A refusal (block, or a full window without blocking) stands until then. */
  refusedUntil: number;
  refusedHits: number;
  batch: number;
  reservedAt: number;
  /** A reservation on its way; resolves false when Redis could not be asked. */
  reserving: Promise<boolean> | null;
}

/**
 * Throttler storage in Redis, so a limit holds across every replica. Keys live under QUEUE_PREFIX
 * (the deployment's namespace in a shared Redis) and expire by themselves. When Redis cannot
 * answer, requests pass: a limiter outage must not become an API outage (Bull, on the same Redis,
 * would fail the request anyway if Redis were really gone).
 *
 * A busy tracker does not cost a Redis round trip per request: the replica reserves a batch of
 * hits in one step (counted in Redis at once, so other replicas see them) and hands them out
 * locally until they run out or the window ends. A refusal is remembered locally until it lapses
 * (a block only ever ends by expiring). Small limits are counted exactly, a hit at a time.
 */
@Injectable()
export class RedisThrottlerStorage implements ThrottlerStorage, OnApplicationShutdown {
  private readonly logger = new Logger(RedisThrottlerStorage.name);
  private readonly redis: Redis & ThrottleCommands;
  private readonly prefix: string;
  private lastWarning = 0;
  private readonly local = new LruCache<string, LocalWindow>(MAX_TRACKERS);

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
    const maxBatch = Math.min(MAX_BATCH, Math.floor(limit / BATCH_SHARE_DIVISOR));
    for (;;) {
      const now = Date.now();
      const w = this.local.get(base, now) ?? this.remember(base, now);
      const known = answerLocally(w, now);
      if (known) return known;
      if (maxBatch <= 1) {
        // Exact counting: concurrent hits of one tracker go to Redis side by side.
        const reply = await this.step(base, ttl, limit, blockDuration, 1);
        if (!reply) return passed(ttl);
        const [totalHits, msToExpire, blocked, msToBlockExpire] = reply;
        if (blocked === 1) return this.refuse(base, w, totalHits, msToBlockExpire);
        return {
          totalHits,
          timeToExpire: seconds(msToExpire),
          isBlocked: false,
          timeToBlockExpire: 0,
        };
      }
      // One reservation at a time per tracker; the requests that find it on its way share it.
      if (!w.reserving) {
        const busy = now - w.reservedAt < BUSY_MS;
        const want = busy ? Math.min(maxBatch, w.batch * 2) : 1;
        w.reserving = this.reserve(base, w, ttl, limit, blockDuration, want);
      }
      if (!(await w.reserving)) return passed(ttl);
    }
  }

  /**
   * The hit answered from what this replica holds (a reserved hit, or a refusal that still
   * stands), without waiting; undefined when only Redis can answer (then call increment).
   */
  incrementLocally(key: string, throttlerName: string): ThrottlerStorageRecord | undefined {
    const now = Date.now();
    const w = this.local.get(`${this.prefix}:${throttlerName}:${key}`, now);
    return w && answerLocally(w, now);
  }

  private remember(base: string, now: number): LocalWindow {
    const w: LocalWindow = {
      next: 1,
      last: 0,
      windowEndsAt: 0,
      refusedUntil: 0,
      refusedHits: 0,
      batch: 1,
      reservedAt: 0,
      reserving: null,
    };
    this.local.set(base, w, now + BUSY_MS, now);
    return w;
  }

  /** Asks Redis for `want` hits and keeps what it grants in `w`; false when Redis is away. */
  private async reserve(
    base: string,
    w: LocalWindow,
    ttl: number,
    limit: number,
    blockDuration: number,
    want: number,
  ): Promise<boolean> {
    const reply = await this.step(base, ttl, limit, blockDuration, want);
    w.reserving = null;
    if (!reply) return false;
    const [hits, msToExpire, blocked, msToBlockExpire, granted] = reply;
    if (blocked === 1) {
      this.refuse(base, w, hits, msToBlockExpire);
      return true;
    }
    const now = Date.now();
    w.next = hits - granted + 1;
    w.last = hits;
    w.windowEndsAt = now + msToExpire;
    w.batch = granted;
    w.reservedAt = now;
    this.local.set(base, w, w.windowEndsAt + BUSY_MS, now);
    return true;
  }

  /** One step of the script; null (logged) when Redis could not answer. */
  private async step(
    base: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    want: number,
  ): Promise<IncrementReply | null> {
    try {
      return await this.redis.throttleIncrement(
        `${base}:hits`,
        `${base}:block`,
        ttl,
        limit,
        blockDuration,
        want,
      );
    } catch (err) {
      this.warn(err);
      return null;
    }
  }

  /** Remembers a refusal until it lapses: until then this tracker's hits are refused here. */
  private refuse(
    base: string,
    w: LocalWindow,
    hits: number,
    msLeft: number,
  ): ThrottlerStorageRecord {
    const now = Date.now();
    w.refusedUntil = now + msLeft;
    w.refusedHits = hits;
    w.next = 1;
    w.last = 0;
    this.local.set(base, w, w.refusedUntil + BUSY_MS, now);
    return refused(hits, msLeft);
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

function answerLocally(w: LocalWindow, now: number): ThrottlerStorageRecord | undefined {
  if (w.refusedUntil > now) return refused(w.refusedHits, w.refusedUntil - now);
  if (w.next <= w.last && now < w.windowEndsAt) {
    return {
      totalHits: w.next++,
      timeToExpire: seconds(w.windowEndsAt - now),
      isBlocked: false,
      timeToBlockExpire: 0,
    };
  }
  return undefined;
}

function refused(totalHits: number, msLeft: number): ThrottlerStorageRecord {
  return {
    totalHits,
    timeToExpire: seconds(msLeft),
    isBlocked: true,
    // At least a second, so Retry-After never tells a blocked client to retry at once.
    timeToBlockExpire: Math.max(1, seconds(msLeft)),
  };
}

/** Fail open: the limiter's outage is not the API's. */
function passed(ttl: number): ThrottlerStorageRecord {
  return { totalHits: 0, timeToExpire: seconds(ttl), isBlocked: false, timeToBlockExpire: 0 };
}
