import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { ProviderName } from '../../src/config/app-config';
import {
  startSandbox,
  type SandboxHandle,
  type SandboxOptions,
} from '../../src/providers/sandbox/sandbox-server';
import { ServiceProcess, TestWorld } from '../../test/support/service';
import { makeWav } from '../../test/support/wav';
import { onCleanup, waitUntil } from './common';

/** A TestWorld (private database, queue prefix, sample folder) that is disposed even on Ctrl-C. */
export function openWorld(): { world: TestWorld; dispose: () => Promise<void> } {
  const world = new TestWorld();
  return { world, dispose: onCleanup(`world ${world.id}`, () => world.dispose()) };
}

export async function openSandbox(
  opts: SandboxOptions,
): Promise<{ sandbox: SandboxHandle; close: () => Promise<void> }> {
  const sandbox = await startSandbox({ port: 0, ...opts });
  return { sandbox, close: onCleanup('sandbox', () => sandbox.close()) };
}

/** The service's settings that point both providers at a sandbox. */
export function sandboxEnv(sandbox: SandboxHandle): Record<string, string> {
  return {
    ELEVENLABS_BASE_URL: sandbox.baseUrl('elevenlabs'),
    ELEVENLABS_API_KEY: 'bench',
    CARTESIA_BASE_URL: sandbox.baseUrl('cartesia'),
    CARTESIA_API_KEY: 'bench',
  };
}

/**
 * Starts the built service in `world`; it stops with the world (TestWorld.dispose). With
 * BENCH_PROFILE_DIR set, the service writes a V8 CPU profile there when it exits, to see where an
 * allocation or a request spends its time (open it in Chrome DevTools or speedscope).
 */
export function startService(
  world: TestWorld,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const profileDir = process.env.BENCH_PROFILE_DIR;
  return world.start(
    profileDir ? { ...env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : env,
  );
}

/**
 * One real WAV shared by every inserted voice: the allocation streams the file at sample_key to
 * the provider, and keys are opaque to it.
 */
export const SAMPLE_KEY = 'bench/sample-3s';

export function writeSample(storageDir: string): number {
  const wav = makeWav(3);
  mkdirSync(join(storageDir, 'bench'), { recursive: true });
  writeFileSync(join(storageDir, SAMPLE_KEY), wav);
  return wav.length;
}

/**
 * Inserts `count` voices straight into `queued`, as the metadata step leaves them: users take
 * turns (row g belongs to user g mod users) and each user's start tags count up from the
 * provider's virtual time, as VoiceRepository.nextFairTag would give them.
 */
export async function insertQueued(
  c: Client,
  opts: {
    count: number;
    provider: ProviderName;
    users: number;
    userPrefix: string;
    sampleBytes: number;
  },
): Promise<void> {
  await c.query(
    `INSERT INTO voices (id, user_id, name, provider, status, fair_tag, queued_at, sample_key,
        sample_content_type, sample_filename, sample_size_bytes, sample_sha256, sample_format,
        sample_duration_ms, sample_rate, sample_channels)
     SELECT gen_random_uuid(), $3 || (g % $4), 'bench ' || g, $2::provider_name, 'queued',
            (SELECT virtual_time FROM providers WHERE name = $2::provider_name) + g / $4 + 1,
            now() + g * interval '1 microsecond', $5, 'audio/wav', 'bench.wav', $6,
            repeat('0', 64), 'wav', 3000, 16000, 1
       FROM generate_series(0, $1::int - 1) g`,
    [opts.count, opts.provider, opts.userPrefix, opts.users, SAMPLE_KEY, opts.sampleBytes],
  );
}

/** Waits until the service has read the ElevenLabs account limit (it does so once at start). */
export async function waitForAccountLimit(world: TestWorld, limit: number): Promise<void> {
  await waitUntil(
    'the ElevenLabs account limit',
    () =>
      world.db(async (c) => {
        const { rows } = await c.query<{ account_limit: number | null }>(
          `SELECT account_limit FROM providers WHERE name = 'elevenlabs'`,
        );
        return rows[0]?.account_limit === limit ? true : undefined;
      }),
    20_000,
  );
}
