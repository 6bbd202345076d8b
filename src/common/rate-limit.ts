import {
  applyDecorators,
  Global,
  Injectable,
  Module,
  SetMetadata,
  UseGuards,
  type CanActivate,
  type DynamicModule,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DEFAULT_IPV6_SUBNET_PREFIX, normalizeIp } from '@nestjs/throttler';
import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Principal } from '../auth/auth.service';
import { AppConfig } from '../config/config.module';
import { LruCache } from './lru-cache';
import { ApiError, problemOf, sendProblem } from './problem';
import { RouteMemo } from './route-memo';
import { RedisThrottlerStorage, type ThrottlerStorageRecord } from './redis-throttler.storage';

/**
 * The limited actions; each has its own per-minute budget per user (see RATE_LIMIT_* in config).
 * Uploads and activations are counted per route; every other route of a limited controller
 * spends the user's `reads` budget (GET, HEAD) or `writes` budget (anything else), shared by all
 * of those routes, so reads stay available when writes are spent and the other way round.
 */
export const RATE_LIMITS = ['uploads', 'activations', 'reads', 'writes'] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];

const WINDOW_MS = 60_000;
const RATE_LIMIT_KEY = 'rate_limit';
/** Storage keys of recently seen users, so a busy user's key is not hashed on every request. */
const KEYS_REMEMBERED = 10_000;
const KEY_MEMORY_MS = 10 * 60_000;

interface Budget {
  name: RateLimitName;
  limit: number;
  ttl: number;
  blockDuration: number;
  /** Header names and the limit's text, written on every request of the route. */
  headers: { limit: string; remaining: string; reset: string; retryAfter: string };
  limitText: string;
}

/**
 * Counts a request against one of its user's budgets: per authenticated user (the token's `sub`),
 * falling back to the client address for requests without one.
 *
 * Budgets, storage keys and headers are those of @nestjs/throttler's ThrottlerGuard (which this
 * replaced), so replicas of either version count in the same Redis keys during a rolling deploy:
 * a fixed window per user and budget, a block of one window past the limit, X-RateLimit-*-<name>
 * headers, 429 rate_limited with Retry-After.
 */
@Injectable()
export class RateLimiter {
  private readonly budgets: Record<RateLimitName, Budget>;
  private readonly keys = new LruCache<string, string>(KEYS_REMEMBERED);

  constructor(
    config: AppConfig,
    private readonly storage: RedisThrottlerStorage,
  ) {
    const budget = (name: RateLimitName, limit: number): Budget => ({
      name,
      limit,
      ttl: WINDOW_MS,
      blockDuration: WINDOW_MS,
      headers: {
        limit: `X-RateLimit-Limit-${name}`,
        remaining: `X-RateLimit-Remaining-${name}`,
        reset: `X-RateLimit-Reset-${name}`,
        retryAfter: `Retry-After-${name}`,
      },
      limitText: String(limit),
    });
    this.budgets = {
      uploads: budget('uploads', config.RATE_LIMIT_UPLOADS_PER_MINUTE),
      activations: budget('activations', config.RATE_LIMIT_ACTIVATIONS_PER_MINUTE),
      reads: budget('reads', config.RATE_LIMIT_READS_PER_MINUTE),
      writes: budget('writes', config.RATE_LIMIT_WRITES_PER_MINUTE),
    };
  }

  /**
   * Admits the request (setting the budget's headers) or throws ApiError 429. Synchronous when
   * this replica can answer the hit itself (see RedisThrottlerStorage).
   */
  hit(
    req: Request & { principal?: Principal },
    res: Response,
    name: RateLimitName,
    keyPrefix: string,
  ): true | Promise<true> {
    const budget = this.budgets[name];
    const tracker = req.principal
      ? `user:${req.principal.userId}`
      : `ip:${normalizeIp(req.ip ?? '', DEFAULT_IPV6_SUBNET_PREFIX)}`;
    const key = this.keyOf(keyPrefix, tracker);
    const local = this.storage.incrementLocally(key, name);
    if (local) return admit(res, budget, local);
    return this.storage
      .increment(key, budget.ttl, budget.limit, budget.blockDuration, name)
      .then((hit) => admit(res, budget, hit));
  }

  /** ThrottlerGuard's key: sha256 of "<controller>-<handler>-<budget>-<tracker>". */
  private keyOf(prefix: string, tracker: string): string {
    const text = `${prefix}-${tracker}`;
    const now = Date.now();
    let key = this.keys.get(text, now);
    if (key === undefined) {
      key = createHash('sha256').update(text).digest('hex');
      this.keys.set(text, key, now + KEY_MEMORY_MS, now);
    }
    return key;
  }
}

/** The budget of a request that has none of its own: reads for GET and HEAD, else writes. */
const generalBudget = (method: string): RateLimitName =>
  method === 'GET' || method === 'HEAD' ? 'reads' : 'writes';
/** Storage key prefix of the reads and writes budgets, which every such route shares. */
const generalKeyPrefix = (name: RateLimitName) => `all-${name}`;

/**
 * The route guard of @RateLimited controllers; it runs after the global AuthGuard has set the
 * principal. Which budget a route spends is read once per route rather than on every request.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly routes = new RouteMemo<{ name: RateLimitName; keyPrefix: string }>();

  constructor(
    private readonly limiter: RateLimiter,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request & { principal?: Principal }>();
    const { name, keyPrefix } = this.routes.get(context, () => {
      const handler = context.getHandler();
      const own = this.reflector.get<RateLimitName | undefined>(RATE_LIMIT_KEY, handler);
      if (own) return { name: own, keyPrefix: `${context.getClass().name}-${handler.name}-${own}` };
      // Every route of a method is the same kind, so the method of this first request decides.
      const general = generalBudget(req.method);
      return { name: general, keyPrefix: generalKeyPrefix(general) };
    });
    return this.limiter.hit(req, http.getResponse<Response>(), name, keyPrefix);
  }
}

/**
 * The same reads and writes budgets for tools mounted outside Nest's routing (Bull Board), after
 * a middleware that set `req.principal`; a refusal is the same problem document.
 */
export function rateLimitMiddleware(limiter: RateLimiter) {
  return (req: Request & { principal?: Principal }, res: Response, next: NextFunction): void => {
    const name = generalBudget(req.method);
    const refuse = (err: unknown) => {
      if (!(err instanceof ApiError)) return next(err);
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
      sendProblem(res, problemOf(err.getStatus(), err.code, err.message));
    };
    try {
      const admitted = limiter.hit(req, res, name, generalKeyPrefix(name));
      if (admitted === true) next();
      else admitted.then(() => next(), refuse);
    } catch (err) {
      refuse(err);
    }
  };
}

/** Sets the budget's headers, or refuses with 429 and Retry-After. */
function admit(res: Response, budget: Budget, hit: ThrottlerStorageRecord): true {
  const { headers } = budget;
  if (hit.isBlocked) {
    const retryAfter = String(Math.max(1, hit.timeToBlockExpire));
    res.setHeader(headers.retryAfter, retryAfter);
    res.setHeader(headers.limit, budget.limitText);
    res.setHeader(headers.remaining, '0');
    res.setHeader(headers.reset, retryAfter);
    throw new ApiError(429, 'rate_limited', `Too many requests; retry in ${retryAfter} s`, {
      'Retry-After': retryAfter,
    });
  }
  res.setHeader(headers.limit, budget.limitText);
  res.setHeader(headers.remaining, String(Math.max(0, budget.limit - hit.totalHits)));
  res.setHeader(headers.reset, String(hit.timeToExpire));
  return true;
}

/**
 * Limits every route of a controller per user: by the route's own budget (@RateLimit), else by
 * the user's reads or writes budget.
 */
export function RateLimited(): ClassDecorator {
  return applyDecorators(UseGuards(RateLimitGuard));
}

/** Gives a route of a @RateLimited controller its own per-user budget instead of reads/writes. */
export function RateLimit(name: RateLimitName): MethodDecorator {
  return SetMetadata(RATE_LIMIT_KEY, name);
}

@Global()
@Module({})
class RateLimitModule {}

/** The rate limiter's Redis storage, for every module's routes; controllers opt in with @RateLimited. */
export function rateLimitModule(): DynamicModule {
  return {
    module: RateLimitModule,
    providers: [RedisThrottlerStorage, RateLimiter],
    exports: [RedisThrottlerStorage, RateLimiter],
  };
}
