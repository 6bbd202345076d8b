/** Thrown by withTimeout when the wait ran out; the operation itself may still finish later. */
export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Bounds a wait on I/O (ARCHITECTURE invariant 10): rejects with TimeoutError after `ms`, so a
 * caller (and whatever coalesces behind it) is never held by a promise that does not settle, e.g.
 * a Redis command parked in a client's offline queue. The operation is not cancelled; callers use
 * this only where a late completion is harmless (idempotent adds, reads).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    // A pending bound must not keep a stopping process alive.
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
