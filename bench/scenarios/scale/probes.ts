import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DataSource, type Logger } from 'typeorm';
import { ReclaimRepository } from '../../../src/reclaim/reclaim.repository';
import { chooseVictims, UNLIMITED_CLONES } from '../../../src/reclaim/victim-choice';
import { type ClaimOptions } from '../../../src/slots/claim.repository';
import { distribution, type Distribution } from '../../lib/common';

export const QUEUE_INFO = {
  budget: { reserveShare: 0.1, periodSeconds: 30 * 86_400, burstShare: 0.1 },
  allocationLeaseSeconds: 120,
  positionMax: 1000,
};

export const ROOT = resolve(__dirname, '../../..');
export const READY = 1000;
export const USERS = 50_000;
export const CLAIM: ClaimOptions = {
  max: 50,
  allocationLeaseSeconds: 120,
  breakerCooldownSeconds: 30,
};
/** The service's reclaim for a backlog: snapshot, the pure policy's choice, the locked mark. */
export const VICTIMS = {
  rules: { minIdleMs: 600_000, minResidencyMs: 120_000 },
  allowance: UNLIMITED_CLONES,
  max: 50,
};
export const pickVictims = async (reclaim: ReclaimRepository) =>
  (await chooseVictims(reclaim, 'elevenlabs', VICTIMS)).victims;

/**
 * The repository with its two statements timed, so a victim choice splits into snapshot, the
 * policy's decision (the rest) and the locked mark: the tail is found where it is. Times add up
 * over a choice (a stale cached snapshot is read and marked again).
 */
export class TimedReclaimRepository extends ReclaimRepository {
  snapshotMs = 0;
  markMs = 0;
  fullReads = 0;
  override async snapshot(...args: Parameters<ReclaimRepository['snapshot']>) {
    const t = performance.now();
    try {
      const snap = await super.snapshot(...args);
      if (!snap.cached) this.fullReads++;
      return snap;
    } finally {
      this.snapshotMs += performance.now() - t;
    }
  }
  override async markChosen(...args: Parameters<ReclaimRepository['markChosen']>) {
    const t = performance.now();
    try {
      return await super.markChosen(...args);
    } finally {
      this.markMs += performance.now() - t;
    }
  }
}

/** Records the SQL a repository sends, so EXPLAIN runs exactly what the service runs. */
export class CaptureLogger implements Logger {
  recording = false;
  statements: { query: string; parameters: unknown[] }[] = [];
  logQuery(query: string, parameters?: unknown): void {
    if (this.recording)
      this.statements.push({ query, parameters: Array.isArray(parameters) ? parameters : [] });
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

export interface Explained {
  query: string;
  plan: string;
  indexes: string[];
  seqScanOnVoices: boolean;
  executionMs: number;
}

/** Runs `fn` 3 times to warm up, then `reps` times timed; `after` runs untimed after each. */
export async function timed(
  reps: number,
  fn: () => Promise<void>,
  after: () => Promise<void> = () => Promise.resolve(),
): Promise<Distribution> {
  const ms: number[] = [];
  for (let i = 0; i < reps + 3; i++) {
    const t = performance.now();
    await fn();
    if (i >= 3) ms.push(performance.now() - t);
    await after();
  }
  return distribution(ms, 2);
}

/**
 * EXPLAIN (ANALYZE, BUFFERS, WAL) of each captured statement in one transaction, rolled back. WAL
 * shows the full-page images a statement writes (pages first changed since a checkpoint).
 */
export async function explain(
  ds: DataSource,
  statements: { query: string; parameters: unknown[] }[],
): Promise<Explained[]> {
  const runner = ds.createQueryRunner();
  await runner.connect();
  const out: Explained[] = [];
  try {
    await runner.startTransaction();
    for (const st of statements) {
      if (/^\s*(START|BEGIN|COMMIT|ROLLBACK|SET)\b/i.test(st.query)) continue;
      const rows: { 'QUERY PLAN': string }[] = await runner.query(
        `EXPLAIN (ANALYZE, BUFFERS, WAL) ${st.query}`,
        st.parameters,
      );
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      out.push({
        query: st.query.replace(/\s+/g, ' ').trim(),
        plan,
        indexes: [...new Set([...plan.matchAll(/ using (\w+)/g)].map((m) => m[1]))],
        seqScanOnVoices: /Seq Scan on voices/.test(plan),
        executionMs: Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1] ?? NaN),
      });
    }
  } finally {
    await runner.rollbackTransaction().catch(() => undefined);
    await runner.release();
  }
  return out;
}
