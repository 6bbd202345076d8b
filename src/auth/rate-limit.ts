import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit';
import {
  applyDecorators,
  Global,
  Injectable,
  Logger,
  Module,
  SetMetadata,
  UseGuards,
  type CanActivate,
  type DynamicModule,
  type ExecutionContext,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Redis } from 'ioredis';
import { ApiError } from '../common/problem';
import { AppConfig } from '../config/config.module';
import type { AuthedRequest } from './auth.guard';

/**
 * The limited actions; each has its own per-minute budget per user (see RATE_LIMIT_* in config).
 * Uploads and activations are counted by their routes (@RateLimit); every other route of a limited
 * controller spends the user's `reads` budget (GET, HEAD) or `writes` budget (anything else),
 * shared by all of those routes, so reads stay available when writes are spent and the other way
 * round.
 */
export const RATE_LIMITS = ['uploads', 'activations', 'reads', 'writes'] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];

const WINDOW_MS = 60_000;
const RATE_LIMIT_KEY = 'rate_limit';

type Check = ReturnType<FastifyInstance['createRateLimit']>;

interface Budget {
  check: Check;
  /** Header names, written on every request of the route. */
  headers: { limit: string; remaining: string; reset: string; retryAfter: string };
}

/**
 * Counts a request against one of its user's budgets with @fastify/rate-limit and its Redis store
 * (a fixed window per user and budget, shared by every replica): per authenticated user (the
 * token's `sub`), falling back to the client address for requests without one. The plugin's own
 * headers are not used: each budget answers with X-RateLimit-*-<name> headers, and a refusal is
 * the API's 429 rate_limited problem with Retry-After.
 *
 * When Redis cannot answer, requests pass (the plugin's skipOnError): a limiter outage must not
 * become an API outage (Bull, on the same Redis, would fail the request anyway if Redis were
 * really gone).
 */
@Injectable()
export class RateLimiter implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RateLimiter.name);
  private readonly redis: Redis;
  private budgets?: Record<RateLimitName, Budget>;
  private lastWarning = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.redis = new Redis(config.REDIS_URL, {
      // Fail fast rather than hold requests while Redis is away; the limiter then fails open.
      maxRetriesPerRequest: 1,
      commandTimeout: 1_000,
      connectionName: 'rate-limit',
      // One socket write for all the checks issued in the same tick (ioredis sends them as one
      // pipeline; each still gets its own answer, in order): under load a write per request
      // was the limiter's largest cost.
      enableAutoPipelining: true,
    });
    this.redis.on('error', (err: Error) => this.warn(err));
  }

  /**
   * Registers the plugin on the app's Fastify instance and makes the checks. At bootstrap, once
   * Nest has set its error handler: waiting for a plugin to load makes Fastify settle the routes
   * registered so far, each with the error handler set at that moment.
   */
  async onApplicationBootstrap(): Promise<void> {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    if (!fastify.hasDecorator('createRateLimit')) {
      await fastify.register(fastifyRateLimit, {
        // Only the checks made below, which the guard runs after authentication.
        global: false,
        redis: this.redis,
        // The deployment's namespace in a shared Redis; keys expire by themselves.
        nameSpace: `${this.config.QUEUE_PREFIX}:rate:`,
        skipOnError: true,
      });
    }
    const budget = (name: RateLimitName, max: number): Budget => ({
      check: fastify.createRateLimit({
        max,
        timeWindow: WINDOW_MS,
        // One counter per budget and user (or address) across every route that spends it.
        keyGenerator: (req) => {
          const { principal } = req as AuthedRequest;
          return principal
            ? `${name}:user:${principal.userId}`
            : `${name}:ip:${normalizeIP(req.ip)}`;
        },
        skipOnError: true,
      }),
      headers: {
        limit: `X-RateLimit-Limit-${name}`,
        remaining: `X-RateLimit-Remaining-${name}`,
        reset: `X-RateLimit-Reset-${name}`,
        retryAfter: `Retry-After-${name}`,
      },
    });
    const c = this.config;
    this.budgets = {
      uploads: budget('uploads', c.RATE_LIMIT_UPLOADS_PER_MINUTE),
      activations: budget('activations', c.RATE_LIMIT_ACTIVATIONS_PER_MINUTE),
      reads: budget('reads', c.RATE_LIMIT_READS_PER_MINUTE),
      writes: budget('writes', c.RATE_LIMIT_WRITES_PER_MINUTE),
    };
  }

  /** Admits the request (setting the budget's headers) or throws ApiError 429. */
  async hit(req: AuthedRequest, reply: FastifyReply, name: RateLimitName): Promise<true> {
    if (!this.budgets) throw new Error('RateLimiter used before the module was initialised');
    const { check, headers } = this.budgets[name];
    let result: Awaited<ReturnType<Check>>;
    try {
      result = await check(req);
    } catch (err) {
      // skipOnError covers the store; anything else is still not worth refusing the request.
      this.warn(err);
      return true;
    }
    if (result.isAllowed) return true;
    if (result.isExceeded) {
      // At least a second, so Retry-After never tells a refused client to retry at once.
      const retryAfter = String(Math.max(1, result.ttlInSeconds));
      void reply
        .header(headers.retryAfter, retryAfter)
        .header(headers.limit, String(result.max))
        .header(headers.remaining, '0')
        .header(headers.reset, retryAfter);
      throw new ApiError(429, 'rate_limited', `Too many requests; retry in ${retryAfter} s`, {
        'Retry-After': retryAfter,
      });
    }
    void reply
      .header(headers.limit, String(result.max))
      .header(headers.remaining, String(result.remaining))
      .header(headers.reset, String(result.ttlInSeconds));
    return true;
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

/** The budget of a request that has none of its own: reads for GET and HEAD, else writes. */
export const generalBudget = (method: string): RateLimitName =>
  method === 'GET' || method === 'HEAD' ? 'reads' : 'writes';

/** The route guard of @RateLimited controllers; it runs after the global AuthGuard set the principal. */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<AuthedRequest>();
    const own = this.reflector.get<RateLimitName | undefined>(RATE_LIMIT_KEY, context.getHandler());
    return this.limiter.hit(
      req,
      http.getResponse<FastifyReply>(),
      own ?? generalBudget(req.method),
    );
  }
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

/** The rate limiter, for every module's routes; controllers opt in with @RateLimited. */
export function rateLimitModule(): DynamicModule {
  return { module: RateLimitModule, providers: [RateLimiter], exports: [RateLimiter] };
}
