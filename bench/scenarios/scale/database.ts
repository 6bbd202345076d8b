import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../../src/database/data-source';
import { ReclaimRepository } from '../../../src/reclaim/reclaim.repository';
import { decide } from '../../../src/policy/reclaim-policy';
import { ClaimRepository } from '../../../src/slots/claim.repository';
import { SlotsRepository } from '../../../src/slots/slots.repository';
import { QueuePositionRepository } from '../../../src/voice/queue-position.repository';
import { VoiceRepository } from '../../../src/voice/voice.repository';
import { makeToken } from '../../../test/support/token';
import { distribution, progress } from '../../lib/common';
import { openSandbox, openWorld, SAMPLE_KEY, sandboxEnv, startService } from '../../lib/world';
import {
  CaptureLogger,
  CLAIM,
  explain,
  pickVictims,
  QUEUE_INFO,
  READY,
  ROOT,
  TimedReclaimRepository,
  timed,
  USERS,
  VICTIMS,
} from './probes';

export async function databaseAtScale(queued: number, total: number, reps: number) {
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
