import { progress, type Distribution, type Machine } from '../lib/common';
import { check, info, mustEqual, type Check, type Mode, type ScenarioResult } from '../lib/report';
import { databaseAtScale } from './scale/database';
import { CLAIM, READY, USERS, VICTIMS } from './scale/probes';
import { workerMemory } from './scale/worker-memory';

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
