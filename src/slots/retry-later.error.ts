import type { ProviderError } from '../providers/provider-error';

/** Thrown to ask Bull for another try later; the attempt is already recorded in Postgres. */
export class RetryLaterError extends Error {
  constructor(
    readonly providerError: ProviderError,
    /** The earliest retry, read by the backoff strategy. */
    readonly retryAfterMs: number | null = providerError.retryAfterMs,
    /** Retry after exactly this long (see backoff.ts): a breaker deferral, or a delay chosen here. */
    readonly fixedDelayMs?: number,
  ) {
    super(`retryable provider error: ${providerError.code}`);
  }
}
