import type { ProviderName } from '../config/app-config';

/**
 * retryable: network errors, timeouts, 5xx, 429 - back off and try again.
 * capacity: the account holds as many voices as it may - recount, reclaim, requeue.
 * budget: the account's clone budget for this period is spent - requeue, no reclaim (deleting a
 *   voice gives no budget back), nothing more goes out before the reset.
 * fatal: bad key, bad audio, malformed request - retrying cannot help.
 * not_found: the remote voice does not exist.
 */
export type ProviderErrorClass = 'retryable' | 'capacity' | 'budget' | 'fatal' | 'not_found';

/**
 * What an adapter throws. `code` is the provider's own code where it sends one (e.g.
 * `voice_limit_reached`, `too_many_concurrent_requests`, `concurrency_limited`, `invalid_api_key`,
 * `quota_exceeded`, `validation_error` for a 422), else `http_<status>`; failures without an answer
 * use the adapters' own codes, all retryable: `timeout`, `network_error` (the voice may or may not
 * exist: look the idempotency key up), `sample_read_failed` (our storage, not the provider) and
 * `invalid_response` (a 2xx that could not be read). Messages never contain the API key.
 */
export class ProviderError extends Error {
  constructor(
    readonly provider: ProviderName,
    readonly errorClass: ProviderErrorClass,
    /** A stable snake_case code: the provider's own where it sends one. */
    readonly code: string,
    message: string,
    readonly httpStatus: number | null = null,
    /** From Retry-After, where the provider sent it. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

/**
 * Resolves to `fallback` when the provider says the voice does not exist: a delete of a voice that
 * is already gone succeeded, and a read of a missing voice finds nothing.
 */
export async function unlessNotFound<T>(call: Promise<T>, fallback: T): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof ProviderError && err.errorClass === 'not_found') return fallback;
    throw err;
  }
}
