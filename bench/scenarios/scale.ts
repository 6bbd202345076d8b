import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { DataSource, type Logger } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source';
import { ReclaimRepository } from '../../src/reclaim/reclaim.repository';
import { decide } from '../../src/policy/reclaim-policy';
import { chooseVictims, UNLIMITED_CLONES } from '../../src/reclaim/victim-choice';
import { ClaimRepository, type ClaimOptions } from '../../src/slots/claim.repository';
import { SlotsRepository } from '../../src/slots/slots.repository';
import { QueuePositionRepository } from '../../src/voice/queue-position.repository';
import { VoiceRepository } from '../../src/voice/voice.repository';
import { makeToken } from '../../test/support/token';
import {
  distribution,
  progress,
  rssMiB,
  sleep,
  waitUntil,
  type Distribution,
  type Machine,
} from '../lib/common';
import { check, info, mustEqual, type Check, type Mode, type ScenarioResult } from '../lib/report';
import {
  insertQueued,
  openSandbox,
  openWorld,
  SAMPLE_KEY,
  sandboxEnv,
  startService,
  writeSample,
  waitForAccountLimit,
} from '../lib/world';

const QUEUE_INFO = {
  budget: { reserveShare: 0.1, periodSeconds: 30 * 86_400, burstShare: 0.1 },
  allocationLeaseSeconds: 120,
  positionMax: 1000,
};

const ROOT = resolve(__dirname, '../..');
const READY = 1000;
const USERS = 50_000;
const CLAIM: ClaimOptions = { max: 50, allocationLeaseSeconds: 120, breakerCooldownSeconds: 30 };
/** The service's reclaim for a backlog: snapshot, the pure policy's choice, the locked mark. */
const VICTIMS = {
  rules: { minIdleMs: 600_000, minResidencyMs: 120_000 },
  allowance: UNLIMITED_CLONES,
  max: 50,
};
const pickVictims = async (reclaim: ReclaimRepository) =>
  (await chooseVictims(reclaim, 'elevenlabs', VICTIMS)).victims;

/**
 * The repository with its two statements timed, so a victim choice splits into snapshot, the
 * policy's decision (the rest) and the locked mark: the tail is found where it is. Times add up
 * over a choice (a stale cached snapshot is read and marked again).
 */
class TimedReclaimRepository extends ReclaimRepository {
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
class CaptureLogger implements Logger {
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

interface Explained {
  query: string;
  plan: string;
  indexes: string[];
  seqScanOnVoices: boolean;
  executionMs: number;
}

/**
 * Scenario 4: a database with 1M voice rows of which 100k are queued (quick: 100k and 10k), then
 * the claim, the victim choice and an activation, each repeated, with their plans; and a worker's
 * memory before and after draining a large batch.
 */
export async function scale(
  mode: Mode,
  machine: Machine,
  _outDir: string,
): Promise<ScenarioResult> {
  const started = Date.now();
  const queued = mode === 'quick' ? 10_000 : 100_000;
  const total = mode === 'quick' ? 100_000 : 1_000_000;
  const reps = mode === 'quick' ? 20 : 50;
  const batch = mode === 'quick' ? 1_000 : 10_000;
  const warmBatch = mode === 'quick' ? 200 : 1_000;

  const db = await databaseAtScale(queued, total, reps);
  progress(
    `scale: claim p50 ${db.claimMs.p50} ms / p95 ${db.claimMs.p95} ms; victims p50 ${db.victimsMs.p50} ms / ` +
      `p95 ${db.victimsMs.p95} ms / p99 ${db.victimsMs.p99} ms (${phases(db.victimPhasesMs)}; ${db.victimFullReads} full reads); activation (ready) p50 ${db.activation.readyMs.p50} ms, ` +
      `(queued, last place) p50 ${db.activation.queuedMs.p50} ms`,
  );
  const memory = await workerMemory(warmBatch, batch);
  progress(
    `scale: worker RSS ${memory.beforeMiB} MiB after warm-up, ${memory.afterMiB} MiB after ${batch} ` +
      `allocations (peak ${memory.peakMiB} MiB)`,
  );
  const growth = memory.afterMiB / memory.beforeMiB;
  const v = db.correctness;
  const checks: Check[] = [
    mustEqual(
      mode,
      'scale',
      `claims that took other than ${CLAIM.max} (or 1) voices`,
      v.claimsWrongSize,
      0,
      `${v.claimsWrongSize} of ${v.claims}`,
    ),
    mustEqual(
      mode,
      'scale',
      'claimed voices out of fair order (fair_tag, queued_at, id of the queue before)',
      v.claimedOutOfOrder,
      0,
      `${v.claimedOutOfOrder} of ${v.claimed}`,
    ),
    mustEqual(
      mode,
      'scale',
      `victim choices that took other than ${VICTIMS.max} voices`,
      v.victimChoicesWrongSize,
      0,
      `${v.victimChoicesWrongSize} of ${v.victimChoices}`,
    ),
    mustEqual(
      mode,
      'scale',
      'victims under an activation lease (half the ready voices hold one)',
      v.leasedVictims,
      0,
      `${v.leasedVictims} of ${v.victims}`,
    ),
    mustEqual(
      mode,
      'scale',
      "victims marked other than the policy module's choice on the same snapshot",
      v.victimsNotChosen,
      0,
      `${v.victimsNotChosen} of ${VICTIMS.max}`,
    ),
    check(mode, {
      scenario: 'scale',
      metric: `claim of 50 at ${label(queued)} queued / ${label(total)} rows, p95`,
      value: db.claimMs.p95,
      display: `${db.claimMs.p95} ms (p50 ${db.claimMs.p50} ms)`,
      comparator: '<=',
      threshold: 10,
      target: '< 10 ms',
    }),
    check(mode, {
      scenario: 'scale',
      metric: `reclaim victim choice (snapshot, policy, locked mark) at ${label(queued)} queued, p95`,
      value: db.victimsMs.p95,
      display: `${db.victimsMs.p95} ms (p50 ${db.victimsMs.p50} ms)`,
      comparator: '<=',
      threshold: 10,
      target: '< 10 ms',
    }),
    info(
      'scale',
      'victim choice split: snapshot, decide (the pure policy), locked mark',
      db.victimPhasesMs.snapshot.p95,
      `${phases(db.victimPhasesMs)}; ${db.victimFullReads} full reads of the ready voices`,
    ),
    info(
      'scale',
      'claim of 1 (one slot freed), p50 / p95',
      db.claimOneMs.p50,
      `${db.claimOneMs.p50} ms / ${db.claimOneMs.p95} ms`,
    ),
    info(
      'scale',
      'floor: a transaction of the same shape doing no work on voices, p50 / p95',
      db.sameShapeEmptyTransactionMs.p50,
      `${db.sameShapeEmptyTransactionMs.p50} ms / ${db.sameShapeEmptyTransactionMs.p95} ms`,
    ),
    info(
      'scale',
      'activation over HTTP, ready voice / queued voice in last place, p50',
      db.activation.readyMs.p50,
      `${db.activation.readyMs.p50} ms / ${db.activation.queuedMs.p50} ms`,
    ),
    check(mode, {
      scenario: 'scale',
      metric: `worker RSS after ${label(batch)} allocations ÷ after warm-up`,
      value: Number(growth.toFixed(3)),
      display: `${growth.toFixed(2)} (${memory.beforeMiB} → ${memory.afterMiB} MiB)`,
      comparator: '<=',
      threshold: 1.2,
      target: '≤ 1.2 (flat)',
    }),
  ];
  return {
    scenario: 'scale',
    mode,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    params: {
      totalVoices: total,
      queuedVoices: queued,
      readyVoices: READY,
      users: USERS,
      repetitions: reps,
      claim: CLAIM,
      victims: VICTIMS,
      workerBatch: batch,
      workerWarmUpBatch: warmBatch,
      note: 'other rows: reclaimed 60%, deleted 30%, failed 10%, both providers; voice_events starts empty',
    },
    results: { ...db, workerMemory: memory },
    checks,
  };
}

const phases = (split: Record<string, Distribution>) =>
  Object.entries(split)
    .map(([name, d]) => `${name} ${d.p50}/${d.p95}/${d.p99}`)
    .join(', ') + ' ms p50/p95/p99';

const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

/** Runs `fn` 3 times to warm up, then `reps` times timed; `after` runs untimed after each. */
async function timed(
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

async function databaseAtScale(queued: number, total: number, reps: number) {
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({ latencyMs: 0 });
  const capture = new CaptureLogger();
  const ds = new DataSource({ ...dataSourceOptions(world.databaseUrl, 5), logger: capture });
  try {
    progress('scale: migrating a dedicated database (node dist/database/migrate.js)');
    await promisify(execFile)(process.execPath, [join(ROOT, 'dist/database/migrate.js')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: world.databaseUrl },
    });
    progress(`scale: inserting ${total} voices, ${queued} of them queued`);
    const seedStart = performance.now();
    await world.db(async (c) => {
      await c.query(
        `INSERT INTO voices (id, user_id, name, provider, status, fencing_token, fair_tag, queued_at,
            ready_at, last_used_at, remote_voice_id, sample_key, sample_content_type,
            sample_filename, sample_size_bytes, sample_sha256, sample_format, sample_duration_ms,
            sample_rate, sample_channels, created_at, updated_at)
         SELECT gen_random_uuid(), 'u' || (g % k.users), 'voice ' || g,
           (CASE WHEN g < k.q + k.r OR g % 2 = 0 THEN 'elevenlabs' ELSE 'cartesia' END)::provider_name,
           (CASE WHEN g < k.q THEN 'queued' WHEN g < k.q + k.r THEN 'ready'
                 ELSE (ARRAY['reclaimed','reclaimed','reclaimed','reclaimed','reclaimed','reclaimed',
                             'deleted','deleted','deleted','failed'])[g % 10 + 1] END)::voice_status,
           1,
           CASE WHEN g < k.q THEN g / k.users + 1 END,
           CASE WHEN g < k.q THEN now() - interval '1 hour' + g * interval '10 microseconds' END,
           CASE WHEN g >= k.q AND g < k.q + k.r THEN now() - interval '3 hours' END,
           CASE WHEN g >= k.q AND g < k.q + k.r AND g % 10 <> 0
                THEN now() - interval '2 hours' + (g - k.q) * interval '1 second' END,
           CASE WHEN g >= k.q AND g < k.q + k.r THEN 'remote-' || g END,
           $5, 'audio/wav', 'voice.wav', 96044, repeat('0', 64), 'wav', 3000, 16000, 1,
           now() - interval '30 days' + g * interval '1 second', now()
         FROM generate_series(0, $3::int - 1) g,
              LATERAL (SELECT $1::int AS q, $2::int AS r, $4::int AS users) k`,
        [queued, READY, total, USERS, SAMPLE_KEY],
      );
      await c.query('VACUUM ANALYZE voices');
    });
    const seedSeconds = (performance.now() - seedStart) / 1000;
    progress(`scale: inserted and analysed in ${seedSeconds.toFixed(1)} s`);
    await ds.initialize();
    const slots = new SlotsRepository(ds);
    const claimRepo = new ClaimRepository(ds);
    const reclaim = new TimedReclaimRepository(ds);
    const voices = new VoiceRepository(ds);

    // The floor on this machine: transactions of the same shape (5 round trips, one row written
    // and committed) that do no work on voices.
    const floorMs = await timed(reps, async () => {
      await ds.transaction(async (em) => {
        await em.query(`SELECT * FROM providers WHERE name = 'cartesia' FOR UPDATE`);
        await em.query('SELECT 1');
        await em.query(`UPDATE providers SET updated_at = now() WHERE name = 'cartesia'`);
      });
    });

    // Claims: room for every repetition, so each takes the next 50 in fair order. Every claim's
    // voices are checked afterwards against the queue's order before the first claim.
    await slots.setLimits('elevenlabs', { configuredLimit: READY + (CLAIM.max + 1) * (reps + 10) });
    const toClaim = (reps + 3) * (CLAIM.max + 1) + CLAIM.max;
    const fairOrder = (
      await ds.query<{ id: string }[]>(
        `SELECT id FROM voices WHERE provider = 'elevenlabs' AND status = 'queued'
          ORDER BY fair_tag, queued_at, id LIMIT $1`,
        [toClaim],
      )
    ).map((r) => r.id);
    const claimedIds: string[] = [];
    let claims = 0;
    let claimsWrongSize = 0;
    const claimAndRecord = async (max: number) => {
      const claimed = await claimRepo.claim('elevenlabs', { ...CLAIM, max });
      claims++;
      if (claimed.length !== max) claimsWrongSize++;
      for (const c of claimed) claimedIds.push(c.voiceId);
    };
    progress(`scale: ${reps} claims of ${CLAIM.max}`);
    const claimMs = await timed(reps, () => claimAndRecord(CLAIM.max));
    // The steady state: one slot frees, one voice is claimed.
    const claimOneMs = await timed(reps, () => claimAndRecord(1));
    capture.statements = [];
    capture.recording = true;
    await claimAndRecord(CLAIM.max);
    capture.recording = false;
    const claimPlans = await explain(ds, capture.statements);
    const claimedOutOfOrder =
      claimedIds.filter((id, i) => fairOrder[i] !== id).length +
      Math.abs(claimedIds.length - toClaim);

    // Victims: no free slot, a backlog; the chosen voices go back to ready after each run so
    // every repetition chooses among the same ready voices. Every other ready voice holds an
    // activation lease: a choice that ignored leases would take some of them.
    const held = (await slots.capacity('elevenlabs')).held;
    await slots.setLimits('elevenlabs', { configuredLimit: held });
    await ds.query(
      `UPDATE voices v SET lease_expires_at = now() + interval '1 hour'
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS k FROM voices
                WHERE provider = 'elevenlabs' AND status = 'ready') r
        WHERE v.id = r.id AND r.k % 2 = 0`,
    );
    const leased = new Set(
      (
        await ds.query<{ id: string }[]>(
          `SELECT id FROM voices WHERE provider = 'elevenlabs' AND status = 'ready'
              AND lease_expires_at > now()`,
        )
      ).map((r) => r.id),
    );
    progress(`scale: ${reps} victim choices among ${READY} ready voices`);
    // Back to ready with the event every status change writes, as the replica's cache of ready
    // voices (ReclaimRepository.snapshot) expects: a silent edit would leave it stale.
    const restore = async (ids: string[]) => {
      await ds.query(
        `WITH r AS (UPDATE voices SET status = 'ready' WHERE id = ANY($1::uuid[]) RETURNING id)
         INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
         SELECT id, 'ready', 'remote_created', 'reclaiming', 'ready' FROM r`,
        [ids],
      );
    };
    let picks: string[] = [];
    let victimChoices = 0;
    let victimChoicesWrongSize = 0;
    let victims = 0;
    let leasedVictims = 0;
    const recordVictims = (ids: string[]) => {
      victimChoices++;
      if (ids.length !== VICTIMS.max) victimChoicesWrongSize++;
      victims += ids.length;
      leasedVictims += ids.filter((id) => leased.has(id)).length;
    };
    const phaseMs = { total: [] as number[], snapshot: [] as number[], mark: [] as number[] };
    const victimsMs = await timed(
      reps,
      async () => {
        [reclaim.snapshotMs, reclaim.markMs] = [0, 0];
        const t = performance.now();
        picks = (await pickVictims(reclaim)).map((v) => v.voiceId);
        phaseMs.total.push(performance.now() - t);
        phaseMs.snapshot.push(reclaim.snapshotMs);
        phaseMs.mark.push(reclaim.markMs);
        recordVictims(picks);
      },
      () => restore(picks),
    );
    // The warm-up runs (the first three) are left out, as timed() leaves them out of the total.
    const [snapshotMs, markMs] = [phaseMs.snapshot.slice(3), phaseMs.mark.slice(3)];
    const victimPhasesMs = {
      snapshot: distribution(snapshotMs, 2),
      decide: distribution(
        phaseMs.total.slice(3).map((t, i) => t - snapshotMs[i] - markMs[i]),
        2,
      ),
      mark: distribution(markMs, 2),
    };
    const victimFullReads = reclaim.fullReads;
    // The marked voices must be the policy module's own choice on the same state, read in full
    // by a repository with nothing cached.
    const snap = await new ReclaimRepository(ds).snapshot('elevenlabs', VICTIMS.max);
    const expected = decide('service', {
      now: snap.now,
      slots: snap.slots,
      held: snap.held.map((h) => h.voice),
      busy: snap.busy,
      waiting: snap.waiting,
      allowance: VICTIMS.allowance,
      rules: VICTIMS.rules,
    }).evict.slice(0, VICTIMS.max);
    capture.statements = [];
    capture.recording = true;
    const picked = (await pickVictims(reclaim)).map((v) => v.voiceId);
    capture.recording = false;
    recordVictims(picked);
    const victimsNotChosen =
      picked.filter((id) => !expected.includes(id)).length +
      Math.abs(picked.length - expected.length);
    await restore(picked);
    const victimPlans = await explain(ds, capture.statements);

    // Activation: over HTTP against an API replica on this database, for a ready voice (the hot
    // path) and for the voice in the last place of the queue (its position is counted).
    const [hot] = await ds.query<{ id: string; user_id: string }[]>(
      `SELECT id, user_id FROM voices WHERE provider = 'elevenlabs' AND status = 'ready' LIMIT 1`,
    );
    await ds.query(`UPDATE voices SET lease_expires_at = now() + interval '1 hour' WHERE id = $1`, [
      hot.id,
    ]);
    const [last] = await ds.query<{ id: string; user_id: string }[]>(
      `SELECT id, user_id FROM voices WHERE provider = 'elevenlabs' AND status = 'queued'
        ORDER BY fair_tag DESC, queued_at DESC, id DESC LIMIT 1`,
    );
    capture.statements = [];
    capture.recording = true;
    const lastVoice = await voices.findById(last.id, last.user_id);
    if (!lastVoice) throw new Error('last queued voice not found');
    const position = await new QueuePositionRepository(ds).queuePosition(lastVoice, QUEUE_INFO);
    capture.recording = false;
    const activationPlans = await explain(ds, capture.statements);

    progress('scale: starting an API replica on the big database');
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      APP_ROLES: 'api',
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '100000000',
      RATE_LIMIT_READS_PER_MINUTE: '100000000',
      RATE_LIMIT_WRITES_PER_MINUTE: '100000000',
    });
    const activate = async (v: { id: string; user_id: string }, expect: number) => {
      const res = await fetch(`${service.url}/v1/voices/${v.id}/activate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${makeToken(v.user_id)}` },
      });
      const body = await res.text();
      if (res.status !== expect) throw new Error(`activate answered ${res.status}: ${body}`);
    };
    progress(`scale: ${reps} activations each of a ready and of the last queued voice`);
    const readyMs = await timed(reps, () => activate(hot, 200));
    const queuedMs = await timed(reps, () => activate(last, 202));
    await service.stop();
    return {
      seedSeconds: Number(seedSeconds.toFixed(1)),
      sameShapeEmptyTransactionMs: floorMs,
      claimMs,
      claimOneMs,
      victimsMs,
      victimPhasesMs,
      victimFullReads,
      activation: { readyMs, queuedMs, lastQueuePosition: position?.position ?? null },
      correctness: {
        claims,
        claimsWrongSize,
        claimed: claimedIds.length,
        claimedOutOfOrder,
        victimChoices,
        victimChoicesWrongSize,
        victims,
        leasedVictims,
        leasedReadyVoices: leased.size,
        victimsNotChosen,
      },
      explain: { claim: claimPlans, victims: victimPlans, activationReadPath: activationPlans },
    };
  } finally {
    if (ds.isInitialized) await ds.destroy();
    await dispose();
    await close();
  }
}

/**
 * EXPLAIN (ANALYZE, BUFFERS, WAL) of each captured statement in one transaction, rolled back. WAL
 * shows the full-page images a statement writes (pages first changed since a checkpoint).
 */
async function explain(
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

/** A worker-only process draining allocations queued by a scheduler-only process. */
async function workerMemory(warmBatch: number, batch: number) {
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({
    latencyMs: 0,
    voiceLimit: { elevenlabs: 1_000_000, cartesia: 1_000_000 },
  });
  try {
    const env = { ...sandboxEnv(sandbox), CARTESIA_SLOT_LIMIT: '1000000' };
    progress('scale: starting a scheduler-only and a worker-only process');
    await startService(world, { ...env, APP_ROLES: 'scheduler' });
    const worker = await startService(world, { ...env, APP_ROLES: 'worker' });
    const pid = worker.pid;
    if (!pid) throw new Error('no worker pid');
    await waitForAccountLimit(world, 1_000_000);
    const sampleBytes = writeSample(world.storageDir);
    const series: { t: number; rssMiB: number; ready: number }[] = [];
    const t0 = performance.now();
    const drain = async (prefix: string, count: number) => {
      await world.db((c) =>
        insertQueued(c, {
          count,
          provider: 'elevenlabs',
          users: 100,
          userPrefix: prefix,
          sampleBytes,
        }),
      );
      let lastReport = performance.now();
      await waitUntil(
        `${count} allocations`,
        () =>
          world.db(async (c) => {
            const { rows } = await c.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM voices WHERE status = 'ready' AND user_id LIKE $1`,
              [`${prefix}%`],
            );
            series.push({
              t: Number(((performance.now() - t0) / 1000).toFixed(1)),
              rssMiB: rssMiB(pid),
              ready: rows[0].n,
            });
            if (performance.now() - lastReport > 5000) {
              lastReport = performance.now();
              progress(`scale: ${rows[0].n}/${count} allocated, worker RSS ${rssMiB(pid)} MiB`);
            }
            return rows[0].n >= count ? true : undefined;
          }),
        900_000,
        1000,
      );
    };
    progress(`scale: warm-up, ${warmBatch} allocations`);
    await drain('warm-', warmBatch);
    await sleep(3000);
    const beforeMiB = rssMiB(pid);
    progress(`scale: draining ${batch} allocations`);
    const drainStart = performance.now();
    await drain('big-', batch);
    const drainSeconds = (performance.now() - drainStart) / 1000;
    await sleep(3000);
    const afterMiB = rssMiB(pid);
    return {
      beforeMiB,
      afterMiB,
      peakMiB: Math.max(...series.map((s) => s.rssMiB)),
      batch,
      drainSeconds: Number(drainSeconds.toFixed(1)),
      allocationsPerSecond: Number((batch / drainSeconds).toFixed(1)),
      series,
    };
  } finally {
    await dispose();
    await close();
  }
}
