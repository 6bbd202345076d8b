const BASE_MS = 1_000;
const CAP_MS = 60_000;

/**
 * Exponential backoff with full jitter (so retries of many voices do not stampede a recovering
 * provider), never shorter than the provider's Retry-After.
 */
export function backoffDelayMs(
  attemptsMade: number,
  err?: Error,
  random: () => number = Math.random,
): number {
  // A delay the allocation chose itself (and covered with its lease), or a breaker deferral:
  // wait exactly that, however many times the job was retried before.
  const fixed = (err as { fixedDelayMs?: unknown } | undefined)?.fixedDelayMs;
  if (typeof fixed === 'number') return fixed;
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** Math.max(0, attemptsMade - 1));
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  // Any error may carry a minimum delay (a provider's Retry-After, an open breaker's cool-down).
  const hinted = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  const retryAfter = typeof hinted === 'number' ? hinted : 0;
  return Math.max(jittered, retryAfter);
}
