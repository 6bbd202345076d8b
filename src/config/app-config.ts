import { z } from 'zod';

export const PROVIDER_NAMES = ['elevenlabs', 'cartesia'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export const ROLES = ['api', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

export const DEV_JWT_SECRET = 'dev-only-insecure-secret-change-me';

const csv = <T extends string>(allowed: readonly [T, ...T[]]) =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(allowed)).min(1));

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const onOff = z.enum(['on', 'off']);
/** compose and Kubernetes pass an unset shell variable as "": treat it as not configured. */
const emptyIsUnset = <T extends z.ZodType>(inner: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), inner);

/** Addresses that only this machine can reach; anything else (0.0.0.0, ::, a LAN address) is not. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1'
  );
}

/** Every variable of CONTRACT.md; nothing outside src/config reads process.env. */
const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(3000).pipe(z.number().max(65535)),
  /**
   * Address the HTTP server listens on. Unset: every interface, except while the published
   * development secret is in use, when it is 127.0.0.1 (see listenHost). The image sets 0.0.0.0.
   */
  HOST: emptyIsUnset(z.string().min(1).optional()),
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/voice_slots'),
  DB_MIGRATE: onOff.default('on'),
  /** Postgres connections per process: size Postgres' max_connections for replicas × this. */
  DB_POOL_SIZE: int(20, 1),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z
    .string()
    // Braces allowed: a Redis Cluster needs a hash tag such as {voice-slots}.
    .regex(/^[A-Za-z0-9_.{}-]+$/)
    .default('voice-slots'),
  APP_ROLES: csv(ROLES).default(['api', 'worker', 'scheduler']),
  WORKER_PROVIDERS: csv(PROVIDER_NAMES).optional(),
  /** Allocations in flight per provider queue per worker process; provider calls are I/O-bound. */
  WORKER_ALLOCATION_CONCURRENCY: int(8, 1).pipe(z.number().max(256)),
  // Empty means unset, as compose passes `${AUTH_JWT_SECRET:-}` through when the shell has none.
  // HS256 keys shorter than the hash (32 bytes) can be brute-forced offline from one token (RFC 7518
  // section 3.2 requires at least this much).
  AUTH_JWT_SECRET: emptyIsUnset(
    z
      .string()
      .refine((v) => Buffer.byteLength(v, 'utf8') >= 32, 'must be at least 32 bytes')
      .optional(),
  ),
  /** Refuse tokens issued longer ago than this (and tokens without `iat`); unset: no limit. */
  AUTH_MAX_TOKEN_AGE_SECONDS: emptyIsUnset(z.coerce.number().int().min(1).optional()),
  AUTH_JWKS_URL: z.url().optional(),
  AUTH_ISSUER: z.string().optional(),
  AUTH_AUDIENCE: z.string().optional(),
  STORAGE_DRIVER: z.enum(['local', 's3']).default('local'),
  STORAGE_DIR: z.string().default('./data/samples'),
  S3_BUCKET: z.string().optional(),
  S3_REGION: z.string().optional(),
  S3_ENDPOINT: z.url().optional(),
  S3_FORCE_PATH_STYLE: z.stringbool().default(false),
  MAX_SAMPLE_BYTES: int(26_214_400, 1),
  /**
   * A stored sample with no voice row, or an unfinished write, untouched this long is debris of a
   * crash between storing and inserting, and the scheduler's sweep removes it.
   */
  SAMPLE_ORPHAN_AGE_SECONDS: int(3600, 1),
  /** An upload bringing less than this on average over 10 s is cut (408 upload_too_slow). */
  UPLOAD_MIN_BYTES_PER_SECOND: int(16_384, 1),
  /** Node's server timeouts: all request headers, and the whole request, must arrive within. */
  HTTP_HEADERS_TIMEOUT_SECONDS: int(20, 1),
  HTTP_REQUEST_TIMEOUT_SECONDS: int(300, 1),
  MIN_SAMPLE_SECONDS: z.coerce.number().min(0).default(1),
  MAX_SAMPLE_SECONDS: z.coerce.number().positive().default(600),
  ELEVENLABS_API_KEY: z.string().min(1).optional(),
  ELEVENLABS_BASE_URL: z.url().optional(),
  ELEVENLABS_SLOT_LIMIT: z.coerce.number().int().min(0).optional(),
  CARTESIA_API_KEY: z.string().min(1).optional(),
  CARTESIA_BASE_URL: z.url().optional(),
  CARTESIA_SLOT_LIMIT: int(100),
  CARTESIA_VERSION: z.string().default('2025-11-04'),
  /** Clone operations per budget period; overrides what the provider publishes (ElevenLabs). */
  ELEVENLABS_CLONE_BUDGET: z.coerce.number().int().min(0).optional(),
  CARTESIA_CLONE_BUDGET: z.coerce.number().int().min(0).optional(),
  /** The period of a configured budget whose provider publishes no reset time (and the pacing's). */
  CLONE_BUDGET_PERIOD_DAYS: z.coerce.number().positive().default(30),
  /** Share of a period's budget kept for voices never cloned before. */
  CLONE_BUDGET_RESERVE: z.coerce.number().min(0).max(1).default(0.1),
  /** Period of the account refresh (slot limit, clone budget counter and reset). */
  ACCOUNT_REFRESH_SECONDS: int(300, 1),
  PROVIDER_SANDBOX: onOff.optional(),
  RECLAIM_MIN_IDLE_SECONDS: int(600),
  RECLAIM_MIN_RESIDENCY_SECONDS: int(120),
  ACTIVATION_LEASE_SECONDS: int(300, 1),
  SCHEDULER_STRATEGY: z.enum(['fair', 'legacy']).default('fair'),
  ALLOCATION_LEASE_SECONDS: int(120, 1),
  MAX_ATTEMPTS: int(5, 1),
  USER_MAX_PENDING: int(10, 1),
  /** Provider failures in a row that open its circuit breaker, and the pause before a probe. */
  BREAKER_FAILURE_THRESHOLD: int(5, 1),
  BREAKER_COOLDOWN_SECONDS: int(30, 1),
  /** Reclaim idle ready voices even without a backlog, to save cost (0 = off). */
  RECLAIM_MAX_IDLE_SECONDS: int(0),
  /** Period of reconciliation with what the providers really hold. */
  RECONCILE_INTERVAL_SECONDS: int(300, 1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE_SECONDS: int(25, 1), // on SIGTERM: drain in-flight jobs this long, then exit
  /** Period of the scheduler's safety-net timers (dispatch, sweeper). Mostly for tests. */
  SCHEDULER_TICK_SECONDS: int(10, 1),
  /** Sandbox tuning when it starts in-process (npm run sandbox reads the same). */
  SANDBOX_PORT: int(0),
  SANDBOX_VOICE_LIMIT: int(10, 0),
  SANDBOX_LATENCY_MS: int(0),
  /** The in-process sandbox's ElevenLabs clone budget (max_voice_add_edits) and its cycle. */
  SANDBOX_CLONE_BUDGET: z.coerce.number().int().min(0).optional(),
  SANDBOX_CLONE_BUDGET_PERIOD_SECONDS: z.coerce.number().positive().optional(),
  RATE_LIMIT_UPLOADS_PER_MINUTE: int(30, 1),
  RATE_LIMIT_ACTIVATIONS_PER_MINUTE: int(600, 1),
  /** Every other route: reads (GET) are cheap and get the larger budget; writes the smaller. */
  RATE_LIMIT_READS_PER_MINUTE: int(1200, 1),
  RATE_LIMIT_WRITES_PER_MINUTE: int(120, 1),
  /** Activations waiting for ready at once (waitSeconds), per replica and per user; over: no wait. */
  LONG_POLL_MAX_PER_REPLICA: int(1000, 1),
  LONG_POLL_MAX_PER_USER: int(10, 1),
  /** GET /v1/voices/{id} counts at most this many voices ahead; past it the position is a bound. */
  QUEUE_POSITION_MAX: int(1000, 1),
  /** /metrics reads Postgres and Redis at most this often (0: every scrape); scrapes in between share it. */
  METRICS_REFRESH_SECONDS: int(5),
  /** Webhook URLs may point at loopback or private addresses (default: on outside production). */
  WEBHOOK_ALLOW_PRIVATE: onOff.optional(),
  /** Waits before each retry of a webhook delivery (CONTRACT.md's schedule); then it is failed. */
  WEBHOOK_RETRY_SCHEDULE_SECONDS: z
    .string()
    .default('0,5,300,1800,7200,18000,36000,36000')
    .transform((s) => s.split(',').map((x) => Number(x.trim())))
    .pipe(z.array(z.number().min(0)).min(1)),
  /** Deliveries in flight per endpoint per worker: a slow receiver never holds the others. */
  WEBHOOK_CONCURRENCY_PER_ENDPOINT: int(4, 1),
  /** GET /v1/voices/events writes a comment this often, so proxies and clients see it alive. */
  VOICE_EVENTS_HEARTBEAT_SECONDS: int(15, 1),
  /** provider.clone_budget_low fires once a period when this share of the budget or less is left. */
  CLONE_BUDGET_LOW_RATIO: z.coerce.number().min(0).max(1).default(0.1),
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.union([z.literal('*'), z.string().regex(/^https?:\/\/[\w.-]+(:\d{1,5})?$/)]))),
});

type Env = z.infer<typeof schema>;

export interface ProviderSettings {
  name: ProviderName;
  apiKey?: string;
  baseUrl?: string;
  /** Configured cap; the account's own limit also applies where the provider reports one. */
  slotLimit?: number;
  /** Configured clone budget per period; overrides the provider's own where it has one. */
  cloneBudget?: number;
  /** True when the built-in sandbox must serve this provider. */
  sandbox: boolean;
}

export interface AppConfig extends Omit<Env, 'APP_ROLES' | 'WORKER_PROVIDERS' | 'AUTH_JWT_SECRET'> {
  /** The configured secret, or the published development one when none is. */
  AUTH_JWT_SECRET: string;
  /** Where the HTTP server listens; undefined: every interface (Node's default). */
  listenHost: string | undefined;
  roles: ReadonlySet<Role>;
  workerProviders: readonly ProviderName[];
  providers: Record<ProviderName, ProviderSettings>;
  sandboxEnabled: boolean;
  /** WEBHOOK_ALLOW_PRIVATE resolved against NODE_ENV. */
  webhookAllowPrivate: boolean;
}

export class ConfigError extends Error {}

/**
 * Parses and validates the environment once. Throws a ConfigError naming every bad variable, so a
 * misconfigured replica stops at start instead of failing on first use.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const problems: string[] = [];
  const production = e.NODE_ENV === 'production';
  const sandboxEnabled = (e.PROVIDER_SANDBOX ?? (production ? 'off' : 'on')) === 'on';
  const secret = e.AUTH_JWT_SECRET ?? DEV_JWT_SECRET;
  // The development secret is in this repository: anyone can sign an admin token with it. It may
  // only guard a listener nobody else can reach, whatever NODE_ENV says. With a JWKS the secret
  // verifies nothing (auth.service.ts pins RS256/ES256 then).
  const forgeable = secret === DEV_JWT_SECRET && !e.AUTH_JWKS_URL;
  const listenHost = e.HOST ?? (forgeable ? '127.0.0.1' : undefined);
  if (production && forgeable) {
    problems.push('AUTH_JWT_SECRET: the development default is refused in production');
  } else if (forgeable && listenHost !== undefined && !isLoopbackHost(listenHost)) {
    problems.push(
      `AUTH_JWT_SECRET: the published development secret is refused on a non-loopback listener ` +
        `(HOST=${listenHost}); set AUTH_JWT_SECRET to a random value of at least 32 bytes ` +
        `(openssl rand -hex 32) or listen on 127.0.0.1`,
    );
  }
  if (
    production &&
    e.PROVIDER_SANDBOX === undefined &&
    (!e.ELEVENLABS_API_KEY || !e.CARTESIA_API_KEY)
  ) {
    // Not an error: key-less providers are simply disabled in production unless asked for.
  }
  if (production) {
    // A provider call carries its API key and our users' voices; a JWKS decides who is admin. In
    // plain http anyone on the path reads the key or serves their own signing keys.
    for (const name of ['ELEVENLABS_BASE_URL', 'CARTESIA_BASE_URL', 'AUTH_JWKS_URL'] as const) {
      const value = e[name];
      if (value !== undefined && new URL(value).protocol !== 'https:')
        problems.push(`${name}: must be an https URL in production`);
    }
  }
  if (e.STORAGE_DRIVER === 's3' && !e.S3_BUCKET) {
    problems.push('S3_BUCKET: required when STORAGE_DRIVER=s3');
  }
  if (e.HTTP_HEADERS_TIMEOUT_SECONDS > e.HTTP_REQUEST_TIMEOUT_SECONDS) {
    // Node cuts the whole request first anyway; a larger headers timeout would only mislead.
    problems.push('HTTP_HEADERS_TIMEOUT_SECONDS: must not exceed HTTP_REQUEST_TIMEOUT_SECONDS');
  }
  if (e.SAMPLE_ORPHAN_AGE_SECONDS <= e.HTTP_REQUEST_TIMEOUT_SECONDS) {
    // The age is what keeps the sweep off a sample whose upload is still inserting its row.
    problems.push('SAMPLE_ORPHAN_AGE_SECONDS: must exceed HTTP_REQUEST_TIMEOUT_SECONDS');
  }
  if (e.MIN_SAMPLE_SECONDS >= e.MAX_SAMPLE_SECONDS) {
    problems.push('MIN_SAMPLE_SECONDS: must be below MAX_SAMPLE_SECONDS');
  }
  const providers: Record<ProviderName, ProviderSettings> = {
    elevenlabs: {
      name: 'elevenlabs',
      apiKey: e.ELEVENLABS_API_KEY,
      baseUrl:
        e.ELEVENLABS_BASE_URL ?? (e.ELEVENLABS_API_KEY ? 'https://api.elevenlabs.io' : undefined),
      slotLimit: e.ELEVENLABS_SLOT_LIMIT,
      cloneBudget: e.ELEVENLABS_CLONE_BUDGET,
      sandbox: !e.ELEVENLABS_API_KEY && !e.ELEVENLABS_BASE_URL && sandboxEnabled,
    },
    cartesia: {
      name: 'cartesia',
      apiKey: e.CARTESIA_API_KEY,
      baseUrl: e.CARTESIA_BASE_URL ?? (e.CARTESIA_API_KEY ? 'https://api.cartesia.ai' : undefined),
      slotLimit: e.CARTESIA_SLOT_LIMIT,
      cloneBudget: e.CARTESIA_CLONE_BUDGET,
      sandbox: !e.CARTESIA_API_KEY && !e.CARTESIA_BASE_URL && sandboxEnabled,
    },
  };
  const enabled = PROVIDER_NAMES.filter((p) => providers[p].baseUrl || providers[p].sandbox);
  const workerProviders = e.WORKER_PROVIDERS ?? enabled;
  for (const p of workerProviders) {
    if (!enabled.includes(p))
      problems.push(
        `WORKER_PROVIDERS: provider ${p} has no API key or base URL and the sandbox is off`,
      );
  }
  if (problems.length) {
    throw new ConfigError(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  const { APP_ROLES, ...rest } = e;
  return {
    ...rest,
    AUTH_JWT_SECRET: secret,
    listenHost,
    roles: new Set(APP_ROLES),
    workerProviders,
    providers,
    sandboxEnabled,
    webhookAllowPrivate: (e.WEBHOOK_ALLOW_PRIVATE ?? (production ? 'off' : 'on')) === 'on',
  };
}

/**
 * The one setting the migration step needs. It must not demand the whole service's configuration
 * (secrets, provider keys) from a Job that only touches the schema.
 */
export function loadDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = schema.pick({ DATABASE_URL: true }).safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      `Invalid configuration:\n  DATABASE_URL: ${parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data.DATABASE_URL;
}
