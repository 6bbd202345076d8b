import { Client } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { InitialSchema1764489600000 } from './migrations/1764489600000-initial-schema';
import { IdempotencyKeys1764576000000 } from './migrations/1764576000000-idempotency-keys';
import { HeldSlots1764662400000 } from './migrations/1764662400000-held-slots';
import { LeanerVoiceIndexes1764748800000 } from './migrations/1764748800000-leaner-voice-indexes';
import { ReclaimNeed1764835200000 } from './migrations/1764835200000-reclaim-need';
import { CloneBudget1764921600000 } from './migrations/1764921600000-clone-budget';
import { VoiceUsage1765008000000 } from './migrations/1765008000000-voice-usage';
import { SampleRemoval1765200000000 } from './migrations/1765200000000-sample-removal';
import { Webhooks1765300000000 } from './migrations/1765300000000-webhooks';
import { VoiceEventStream1765400000000 } from './migrations/1765400000000-voice-event-stream';
import { ProviderEvents1765400001000 } from './migrations/1765400001000-provider-events';
import { WebhookClaim1765400002000 } from './migrations/1765400002000-webhook-claim';
import { UploadProbe1765500000000 } from './migrations/1765500000000-upload-probe';
import { WebhookLeaseHot1765600000000 } from './migrations/1765600000000-webhook-lease-hot';

export const MIGRATIONS = [
  InitialSchema1764489600000,
  IdempotencyKeys1764576000000,
  HeldSlots1764662400000,
  LeanerVoiceIndexes1764748800000,
  ReclaimNeed1764835200000,
  CloneBudget1764921600000,
  VoiceUsage1765008000000,
  SampleRemoval1765200000000,
  Webhooks1765300000000,
  VoiceEventStream1765400000000,
  ProviderEvents1765400001000,
  WebhookClaim1765400002000,
  UploadProbe1765500000000,
  WebhookLeaseHot1765600000000,
];

/**
 * Bounds on every wait of the service's pool (ARCHITECTURE invariant 10): a connection attempt to
 * a server that is restarting or unreachable, a statement, a lock, a transaction left idle, and a
 * connection whose peer vanished without closing it (keep-alive, then the client-side read
 * timeout as the last resort). The service's statements take milliseconds; these only end waits
 * that would otherwise hold a dispatch or a job forever. Migrations and one-off tools do not use
 * them: a migration may legitimately run long or wait for another replica's migration lock.
 */
export const SERVICE_POOL_BOUNDS = {
  connectionTimeoutMillis: 5_000,
  statement_timeout: 15_000,
  lock_timeout: 10_000,
  idle_in_transaction_session_timeout: 30_000,
  query_timeout: 25_000,
  keepAlive: true,
  keepAliveInitialDelayMillis: 5_000,
} as const;

export function dataSourceOptions(
  databaseUrl: string,
  poolSize = 20,
  bounded = false,
): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    synchronize: false,
    // Workers, the API and the dispatcher share one pool per process (DB_POOL_SIZE).
    extra: { max: poolSize, ...(bounded ? SERVICE_POOL_BOUNDS : {}) },
  };
}

/**
 * Creates the database named in the URL when it does not exist, so a newcomer's first start (and
 * each test run's private database) needs no manual step.
 */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return;
  url.pathname = '/postgres';
  const client = new Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      const quoted = '"' + name.replace(/"/g, '""') + '"';
      await client.query(`CREATE DATABASE ${quoted}`).catch((err: { code?: string }) => {
        // Two replicas starting together may race to create it.
        if (err.code !== '42P04' && err.code !== '23505') throw err;
      });
    }
  } finally {
    await client.end();
  }
}

/** Applies pending migrations under an advisory lock so replicas starting together migrate once. */
export async function runMigrations(databaseUrl: string): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const ds = new DataSource(dataSourceOptions(databaseUrl));
  await ds.initialize();
  try {
    const runner = ds.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock(774411)');
      const applied = await ds.runMigrations({ transaction: 'each' });
      return applied.map((m) => m.name);
    } finally {
      await runner.query('SELECT pg_advisory_unlock(774411)').catch(() => undefined);
      await runner.release();
    }
  } finally {
    await ds.destroy();
  }
}
