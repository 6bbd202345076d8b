import './config/node-version';
import './observability/tracing';
import 'reflect-metadata';
import { getQueueToken } from '@nestjs/bull';
import type { INestApplication } from '@nestjs/common';
import type { Queue } from 'bull';
import pino, { type Logger } from 'pino';
import { ConfigError, loadConfig, type AppConfig } from './config/app-config';
import { startApp } from './bootstrap';
import { QueueName } from './queue/queues';

const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = pino({ level: config.LOG_LEVEL });

  // Listen from the first moment: as PID 1 in a container a signal nobody listens to is ignored,
  // and one that arrives while the app starts must still stop it once it is up.
  let received: NodeJS.Signals | null = null;
  let onSignal: (signal: NodeJS.Signals) => void = (signal) => (received ??= signal);
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, (s: NodeJS.Signals) => onSignal(s));

  const app = await startApp(config);
  takeOverSignals(app, log);
  const url = `http://localhost:${config.PORT}`;
  log.info({ url, roles: [...config.roles], docs: `${url}/docs` }, 'voice-slots listening');

  let stopping = false;
  onSignal = (signal) => {
    if (stopping) {
      // A second Ctrl-C (or an impatient supervisor) means now; Bull's job locks and the
      // allocation leases hand whatever is in flight to another replica.
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    void shutdown(app, config, log, signal);
  };
  if (received) onSignal(received);
}

/**
 * bootstrap.ts enables Nest's shutdown hooks, whose signal handler ends the process by raising the
 * signal again once the hooks ran: exit status 143, "killed", to Docker, Kubernetes and any
 * supervisor. This process owns its exit status, so main.ts runs the same shutdown itself (below)
 * and exits 0 after a clean drain.
 */
function takeOverSignals(app: INestApplication, log: Logger): void {
  const nest = app as unknown as { unsubscribeFromProcessSignals?: () => void };
  if (typeof nest.unsubscribeFromProcessSignals === 'function')
    nest.unsubscribeFromProcessSignals();
  else log.warn("Nest's signal handler could not be removed; a clean stop may exit with 143");
}

/**
 * SIGTERM: stop taking jobs on every queue at once, then let Nest's hooks wait for the jobs in
 * flight (the workers' beforeApplicationShutdown), close HTTP, Bull and Postgres, and exit 0.
 * Past SHUTDOWN_GRACE_SECONDS it exits 1 with work in flight; that work is not lost: Bull moves a
 * job whose lock lapses back to the queue for another worker, and the sweeper resolves an
 * allocation whose lease expired.
 */
async function shutdown(
  app: INestApplication,
  config: AppConfig,
  log: Logger,
  signal: NodeJS.Signals,
): Promise<void> {
  const graceMs = config.SHUTDOWN_GRACE_SECONDS * 1000;
  const started = Date.now();
  log.info(
    { signal, graceSeconds: config.SHUTDOWN_GRACE_SECONDS },
    'shutting down: taking no new jobs, finishing those in flight',
  );
  const overdue = setTimeout(() => {
    log.error(
      { graceSeconds: config.SHUTDOWN_GRACE_SECONDS },
      'shutdown grace period exceeded; exiting with work in flight (it is retried elsewhere)',
    );
    process.exit(1);
  }, graceMs);
  overdue.unref();
  try {
    await stopTakingJobs(app, log);
    await app.close();
  } catch (err) {
    log.error({ err }, 'shutdown failed');
    process.exit(1);
  }
  clearTimeout(overdue);
  log.info({ ms: Date.now() - started }, 'voice-slots stopped');
  process.exit(0);
}

/**
 * Nest runs the shutdown hooks module after module, so a worker draining one queue would keep
 * taking jobs from the others meanwhile. A local pause on every queue first stops all fetching at
 * once; it does not wait for running jobs (the hooks do) and keeps the Redis connection that the
 * same Queue instances need to add jobs (dispatch after a finished allocation, uploads).
 */
async function stopTakingJobs(app: INestApplication, log: Logger): Promise<void> {
  await Promise.all(
    Object.values(QueueName).map(async (name) => {
      try {
        const queue = app.get<Queue>(getQueueToken(name), { strict: false });
        await queue.pause(true, true);
      } catch (err) {
        log.warn({ err, queue: name }, 'could not pause queue; its hook still drains it');
      }
    }),
  );
}

main().catch((err: unknown) => {
  const log = pino();
  if (err instanceof ConfigError) log.fatal(err.message);
  else log.fatal({ err }, 'start failed');
  process.exit(1);
});
