import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import Bull from 'bull';
import { freePort, ServiceProcess, type TestWorld } from './service';

export { sandboxEnv } from './sandbox-env';

const ROOT = resolve(__dirname, '../..');

/** The variables that point every role of a world at one shared, standalone provider sandbox. */
/**
 * Starts service processes in a world like `world.start`, with a longer readiness wait: a suite
 * that starts six processes at once on two cores needs more than the default 30 s when the
 * machine is busy. Stop them with `stopAll` before `world.dispose()`.
 */
export class Processes {
  private readonly started: ServiceProcess[] = [];

  constructor(private readonly world: TestWorld) {}

  async start(extra: Record<string, string>, readyTimeoutMs = 60_000): Promise<ServiceProcess> {
    const port = await freePort();
    const svc = new ServiceProcess(port, this.world.env({ PORT: String(port), ...extra }));
    this.started.push(svc);
    await svc.ready(readyTimeoutMs);
    return svc;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.started.map((s) => s.stop()));
  }
}

/**
 * Runs a built script (e.g. `database/migrate.js`, or `main.js` expected to refuse to start) like
 * the deployment's one-off steps do, until it exits by itself or is killed after `timeoutMs`.
 */
export async function runBuiltScript(
  script: string,
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((res) => child.once('exit', res));
  clearTimeout(timer);
  return { code, output };
}

/** Reads a world's Bull queues from outside the service, as an operator's dashboard would. */
export class QueueProbe {
  private readonly queues = new Map<string, Bull.Queue>();

  constructor(private readonly world: TestWorld) {}

  async counts(name: string): Promise<Bull.JobCounts> {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Bull(name, this.world.env().REDIS_URL, { prefix: this.world.queuePrefix });
      this.queues.set(name, queue);
    }
    return queue.getJobCounts();
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

/** The JSON log lines of a service's output that carry `msg`. */
export function logLines(output: string, msg: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed.msg === msg) lines.push(parsed);
    } catch {
      // a line cut by the output buffer's limit
    }
  }
  return lines;
}

export async function until<T>(
  what: string,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
