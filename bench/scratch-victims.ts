// SCRATCH (not committed): interleaved A/B of victim-choice phases on a scale-sized database.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source';
import { ReclaimRepository } from '../src/reclaim/reclaim.repository';
import { decide } from '../src/policy/reclaim-policy';
import { chooseVictims, UNLIMITED_CLONES } from '../src/reclaim/victim-choice';
import { SlotsRepository } from '../src/slots/slots.repository';
import { distribution, cleanupAll } from './lib/common';
import { openWorld, SAMPLE_KEY } from './lib/world';

const ROOT = resolve(__dirname, '..');
const rules = { minIdleMs: 600_000, minResidencyMs: 120_000 };
async function main() {
  const { world, dispose } = openWorld();
  const ds = new DataSource({ ...dataSourceOptions(world.databaseUrl, 5) });
  try {
    await promisify(execFile)(process.execPath, [join(ROOT, 'dist/database/migrate.js')], {
      cwd: ROOT, env: { PATH: process.env.PATH ?? '', DATABASE_URL: world.databaseUrl },
    });
    const [queued, READY, total, USERS] = [100_000, 1000, 1_000_000, 50_000];
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
    await ds.initialize();
    const slots = new SlotsRepository(ds);
    const held = (await slots.capacity('elevenlabs')).held;
    await slots.setLimits('elevenlabs', { configuredLimit: held });
    await ds.query(
      `UPDATE voices v SET lease_expires_at = now() + interval '1 hour'
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS k FROM voices
                WHERE provider = 'elevenlabs' AND status = 'ready') r
        WHERE v.id = r.id AND r.k % 2 = 0`,
    );
    const repo = new ReclaimRepository(ds);
    const restore = async (ids: string[]) => {
      await ds.query(
        `WITH r AS (UPDATE voices SET status = 'ready' WHERE id = ANY($1::uuid[]) RETURNING id)
         INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
         SELECT id, 'ready', 'remote_created', 'reclaiming', 'ready' FROM r`,
        [ids],
      );
    };
    const m: Record<string, number[]> = {};
    const rec = (k: string, t: number) => (m[k] ??= []).push(performance.now() - t);
    const mode = process.argv[2] ?? 'all';
    for (let i = 0; i < Number(process.env.N ?? 200); i++) {
      let t = performance.now();
      await repo.snapshot('elevenlabs', 50, { fresh: true });
      rec('snapFull', t);
      t = performance.now();
      const snap = await repo.snapshot('elevenlabs', 50);
      rec('snapCached', t);
      t = performance.now();
      const d = decide('service', { now: snap.now, slots: snap.slots, held: snap.held.map((h) => h.voice), busy: snap.busy, waiting: snap.waiting, allowance: UNLIMITED_CLONES, rules });
      rec('decide', t);
      const byId = new Map(snap.held.map((h) => [h.id, h]));
      const chosen = d.evict.slice(0, 50).flatMap((id) => byId.get(id) ?? []);
      t = performance.now();
      const out = await repo.markChosen('elevenlabs', chosen, { mode: 'backlog', ...UNLIMITED_CLONES });
      rec('mark', t);
      if (out.victims.length !== 50) console.log('short', out);
      await restore(out.victims.map((v) => v.voiceId));
      t = performance.now();
      await ds.transaction(async (em) => {
        await em.query(`SELECT * FROM providers WHERE name = 'cartesia' FOR UPDATE`);
        await em.query(`UPDATE providers SET updated_at = now() WHERE name = 'cartesia'`);
      });
      rec('floorCommit', t);
      t = performance.now();
      await ds.query(`SELECT reclaim_need('elevenlabs', 50, NULL, NULL)`);
      rec('reclaimNeed', t);
      t = performance.now();
      await ds.query(`SELECT 1`);
      rec('select1', t);
      if (mode === 'all') {
        t = performance.now();
        const v = await chooseVictims(repo, 'elevenlabs', { rules, allowance: UNLIMITED_CLONES, max: 50 });
        rec('choose', t);
        await restore(v.victims.map((x) => x.voiceId));
      }
    }
    // server-side plan of the mark, with live tids
    const snap = await repo.snapshot('elevenlabs', 50, { fresh: true });
    const d = decide('service', { now: snap.now, slots: snap.slots, held: snap.held.map((h) => h.voice), busy: snap.busy, waiting: snap.waiting, allowance: UNLIMITED_CLONES, rules });
    console.log('evict', d.evict.length);
    const byId = new Map(snap.held.map((h) => [h.id, h]));
    const chosen = d.evict.slice(0, 50).flatMap((id) => byId.get(id) ?? []);
    const fake = Object.create(ds) as DataSource;
    (fake as unknown as { query: unknown }).query = async (q: string, p: unknown[]) => {
      const r = ds.createQueryRunner();
      await r.connect();
      await r.startTransaction();
      for (let k = 0; k < 3; k++) {
        const rows: { 'QUERY PLAN': string }[] = await r.query('EXPLAIN (ANALYZE, BUFFERS, WAL) ' + q, p);
        if (k === 2) console.log(rows.map((x) => x['QUERY PLAN']).join('\n'));
        await r.query('ROLLBACK');
        await r.query('BEGIN');
      }
      await r.rollbackTransaction().catch(() => undefined);
      await r.release();
      return [];
    };
    await new ReclaimRepository(fake).markChosen('elevenlabs', chosen, { mode: 'backlog', ...UNLIMITED_CLONES });
    for (const [k, v] of Object.entries(m)) {
      const x = distribution(v.slice(5));
      console.log(k.padEnd(12), `p50 ${x.p50} p95 ${x.p95} p99 ${x.p99}`);
    }
  } finally {
    if (ds.isInitialized) await ds.destroy();
    await dispose();
  }
}
main().then(() => cleanupAll()).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
