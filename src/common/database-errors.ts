/**
 * Errors that mean "Postgres is not reachable right now" (restarting, failing over, the pool's
 * connections cut), as opposed to a statement that is wrong: the first kind is worth waiting for
 * a moment and is the service's unavailability, not a defect (ARCHITECTURE invariant 10).
 */
const PG_CODES = new Set([
  '57P01', // admin_shutdown: the server is stopping (a restart, a failover)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or shutting down
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
]);
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);
/** node-postgres says these in words only. */
const MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
];

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const x = e as { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown };
    if (typeof x.code === 'string' && (PG_CODES.has(x.code) || SOCKET_CODES.has(x.code)))
      return true;
    if (typeof x.message === 'string' && MESSAGES.some((m) => (x.message as string).includes(m)))
      return true;
    // TypeORM wraps the driver's error; Node wraps causes.
    e = x.driverError ?? x.cause;
  }
  return false;
}

/**
 * Runs `fn` again while Postgres is unavailable, for at most `budgetMs` (waits doubling from
 * 100 ms), so a request that arrives during a fast restart is answered once Postgres is back
 * instead of failing. Only for work that is safe to repeat (reads, compare-and-set writes).
 */
export async function whileDatabaseReturns<T>(fn: () => Promise<T>, budgetMs = 5_000): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let wait = 100; ; wait = Math.min(wait * 2, 1_000)) {
    try {
      return await fn();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() + wait > deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
