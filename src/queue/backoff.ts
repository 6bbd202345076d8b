const BASE_MS = 1_000;
const CAP_MS = 60_000;
/**
 * The longest Retry-After honoured. A provider (or anything between us and it) answering a year
 * would otherwise park the voice, and hold its slot and allocation lease, for that year; past this
 * the voice is simply tried again, and a still-throttling provider says so again.
 */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** A provider's Retry-After bounded by MAX_RETRY_AFTER_MS; 0 when it gave none. */
export function cappedRetryAfterMs(hinted: unknown): number {
  return typeof hinted === 'number' && Number.isFinite(hinted) && hinted > 0
    ? Math.min(hinted, MAX_RETRY_AFTER_MS)
    : 0;
}

/**
 * Exponential backoff with full jitter (so retries of many voices do not stampede a recovering
 * provider), never shorter than the provider's Retry-After (itself capped at MAX_RETRY_AFTER_MS).
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
  const retryAfter = cappedRetryAfterMs(
    (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs,
  );
  return Math.max(jittered, retryAfter);
}
