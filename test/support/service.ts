import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { TEST_JWT_SECRET } from './token';

const ROOT = resolve(__dirname, '../..');
const PG = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port')),
      );
    });
  });
}

/**
 * A private world for one suite: its own database, queue prefix and sample folder, so test runs
 * (and suites running in parallel) never see each other.
 */
export class TestWorld {
  readonly id = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  readonly databaseUrl: string;
  readonly queuePrefix = `vs-${this.id}`;
  readonly storageDir = mkdtempSync(join(tmpdir(), 'vs-samples-'));
  private readonly services: ServiceProcess[] = [];
  private readonly pg: string;
  private readonly redis: string;

  /** On the shared servers by default; suites that restart them pass their private ones. */
  constructor(servers: { pgUrl?: string; redisUrl?: string } = {}) {
    this.pg = servers.pgUrl ?? PG;
    this.redis = servers.redisUrl ?? REDIS;
    this.databaseUrl = `${this.pg}/vs_${this.id}`;
  }

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redis,
      QUEUE_PREFIX: this.queuePrefix,
      STORAGE_DIR: this.storageDir,
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'warn',
      SCHEDULER_TICK_SECONDS: '1',
      // Suites poll voices many times a second; the read and write budgets and the metrics cache
      // are tested by rate-limits.e2e-spec.ts and deep-queue.e2e-spec.ts, which set them.
      RATE_LIMIT_READS_PER_MINUTE: '1000000',
      RATE_LIMIT_WRITES_PER_MINUTE: '1000000',
      METRICS_REFRESH_SECONDS: '0',
      ...extra,
    };
  }

  async start(extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const port = await freePort();
    const svc = new ServiceProcess(port, this.env({ PORT: String(port), ...extra }));
    this.services.push(svc);
    await svc.ready();
    return svc;
  }

  async db<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: this.databaseUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  async dispose(): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
    const admin = new Client({ connectionString: `${this.pg}/postgres` });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "vs_${this.id}" WITH (FORCE)`);
    await admin.end();
    rmSync(this.storageDir, { recursive: true, force: true });
    // Remove this run's Bull keys so a shared Redis stays clean.
    const { default: Redis } = await import('ioredis');
    const redis = new Redis(this.redis);
    const keys = await redis.keys(`${this.queuePrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

/** The built service (`node dist/main.js`) as a child process, as users run it. */
export class ServiceProcess {
  readonly url: string;
  private readonly child: ChildProcess;
  output = '';
  private exited: Promise<number | null>;

  constructor(
    readonly port: number,
    env: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.child = spawn(process.execPath, [join(ROOT, 'dist/main.js')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-200_000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((res) => this.child.once('exit', (code) => res(code)));
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.exited.then((c) => (exitCode = c));
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`service exited (${exitCode}):\n${this.output}`);
      try {
        const res = await fetch(`${this.url}/health/ready`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`service not ready in ${timeoutMs} ms:\n${this.output}`);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a signal without waiting (SIGSTOP/SIGCONT to freeze a worker mid-call). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
