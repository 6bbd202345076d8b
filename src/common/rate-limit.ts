import {
  applyDecorators,
  Injectable,
  Module,
  UseGuards,
  type DynamicModule,
  type ExecutionContext,
} from '@nestjs/common';
import {
  SkipThrottle,
  ThrottlerGuard,
  ThrottlerModule,
  type ThrottlerLimitDetail,
} from '@nestjs/throttler';
import type { Principal } from '../auth/auth.service';
import { AppConfig } from '../config/config.module';
import { ApiError } from './problem';
import { RedisThrottlerStorage } from './redis-throttler.storage';

/** The limited actions; each has its own per-minute budget per user (see RATE_LIMIT_* in config). */
export const RATE_LIMITS = ['uploads', 'activations'] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];

const WINDOW_MS = 60_000;

/**
 * Throttles per authenticated user (the token's `sub`), falling back to the client address for
 * requests without one. It runs as a route guard, after the global AuthGuard has set the principal.
 */
@Injectable()
export class UserThrottlerGuard extends ThrottlerGuard {
  protected override getTracker(req: Record<string, unknown>): Promise<string> {
    const principal = req.principal as Principal | undefined;
    if (principal) return Promise.resolve(`user:${principal.userId}`);
    return super.getTracker(req).then((ip) => `ip:${ip}`);
  }

  protected override throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const retryAfter = Math.max(1, detail.timeToBlockExpire);
    return Promise.reject(
      new ApiError(429, 'rate_limited', `Too many requests; retry in ${retryAfter} s`, {
        'Retry-After': String(retryAfter),
      }),
    );
  }
}

/** Limits a route by the named per-user budget (and by no other). */
export function RateLimit(name: RateLimitName): MethodDecorator & ClassDecorator {
  const others = Object.fromEntries(RATE_LIMITS.filter((n) => n !== name).map((n) => [n, true]));
  return applyDecorators(SkipThrottle(others), UseGuards(UserThrottlerGuard));
}

@Module({ providers: [RedisThrottlerStorage], exports: [RedisThrottlerStorage] })
class RateLimitStorageModule {}

/** The throttler with its Redis storage; routes opt in with @RateLimit. */
export function rateLimitModule(): DynamicModule {
  return ThrottlerModule.forRootAsync({
    imports: [RateLimitStorageModule],
    inject: [AppConfig, RedisThrottlerStorage],
    useFactory: (config: AppConfig, storage: RedisThrottlerStorage) => ({
      storage,
      throttlers: [
        { name: 'uploads', ttl: WINDOW_MS, limit: config.RATE_LIMIT_UPLOADS_PER_MINUTE },
        { name: 'activations', ttl: WINDOW_MS, limit: config.RATE_LIMIT_ACTIVATIONS_PER_MINUTE },
      ] satisfies { name: RateLimitName; ttl: number; limit: number }[],
    }),
  });
}
