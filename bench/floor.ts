/**
 * The throughput benchmark's floor: the primitive I/O of one allocation without the framework,
 * run as its own process like the service. Per allocation, one Bull job whose handler reads the
 * sample file, sends it in one multipart POST to the sandbox's ElevenLabs over undici and makes
 * single-row Postgres commits (as many per allocation, on average, as the service made in the
 * same run). Prints one JSON line: the CPU this process spent on the measured allocations.
 *
 * Settings from the environment (set by bench/scenarios/throughput.ts): DATABASE_URL, REDIS_URL,
 * QUEUE_PREFIX, SANDBOX_URL (the ElevenLabs base URL), SAMPLE_PATH, WARM, COUNT,
 * COMMITS_PER_ALLOCATION, CONCURRENCY, POOL.
 */
import Bull from 'bull';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import { request } from 'undici';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

const sandboxUrl = env('SANDBOX_URL');
const samplePath = env('SAMPLE_PATH');
const commitsPerAllocation = Number(env('COMMITS_PER_ALLOCATION'));
const concurrency = Number(env('CONCURRENCY'));

/** The commits allocation `i` makes, spread so that any run of allocations averages the rate. */
const commitsOf = (i: number) =>
  Math.round((i + 1) * commitsPerAllocation) - Math.round(i * commitsPerAllocation);

function multipart(sample: Buffer, name: string): { body: Buffer; contentType: string } {
  const boundary = `----floor-${randomBytes(12).toString('hex')}`;
  const field = (n: string, v: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`;
  const body = Buffer.concat([
    Buffer.from(
      field('name', name) +
        `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="floor.wav"\r\n` +
        'Content-Type: audio/wav\r\n\r\n',
    ),
    sample,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

async function main(): Promise<void> {
  const pool = new Pool({ connectionString: env('DATABASE_URL'), max: Number(env('POOL')) });
  await pool.query(
    `CREATE TABLE IF NOT EXISTS floor_commits (id bigserial PRIMARY KEY, allocation int NOT NULL,
       at timestamptz NOT NULL DEFAULT now())`,
  );
  const queue = new Bull('floor', env('REDIS_URL'), { prefix: env('QUEUE_PREFIX') });
  await queue.isReady();

  const allocate = async (i: number) => {
    const sample = await readFile(samplePath);
    const { body, contentType } = multipart(sample, `floor ${i}`);
    const res = await request(`${sandboxUrl}/v1/voices/add`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'xi-api-key': 'bench', accept: 'application/json' },
      body,
    });
    const answer = (await res.body.json()) as { voice_id?: string };
    if (res.statusCode !== 200 || !answer.voice_id)
      throw new Error(`create answered ${res.statusCode}: ${JSON.stringify(answer)}`);
    for (let k = 0; k < commitsOf(i); k++)
      await pool.query('INSERT INTO floor_commits (allocation) VALUES ($1)', [i]);
  };

  let done = 0;
  let failed: Error | null = null;
  let waiter: { target: number; resolve: () => void } | null = null;
  queue.on('completed', () => {
    done++;
    if (waiter && done >= waiter.target) waiter.resolve();
  });
  queue.on('failed', (_job, err) => {
    failed = err;
    waiter?.resolve();
  });
  void queue.process('allocate', concurrency, (job: Bull.Job<{ i: number }>) =>
    allocate(job.data.i),
  );
  const batch = async (from: number, count: number) => {
    const finished = new Promise<void>((resolve) => (waiter = { target: from + count, resolve }));
    for (let i = from; i < from + count; i++)
      await queue.add('allocate', { i }, { removeOnComplete: true, attempts: 1 });
    await finished;
    if (failed) throw failed;
  };

  const warm = Number(env('WARM'));
  const count = Number(env('COUNT'));
  // The same warm-up as the service gets: lazy loading and JIT paid before the measurement.
  await batch(0, warm);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await batch(warm, count);
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  const { rows } = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM floor_commits WHERE allocation >= $1',
    [warm],
  );
  process.stdout.write(
    `${JSON.stringify({
      allocations: count,
      commits: rows[0].n,
      seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
      kernelMs: cpu.system / 1000,
    })}\n`,
  );
  await queue.close();
  await pool.end();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
