import type { ProviderName } from '../config/app-config';

/**
 * retryable: network errors, timeouts, 5xx, 429 - back off and try again.
 * capacity: the account holds as many voices as it may - recount, reclaim, requeue.
 * fatal: bad key, bad audio, malformed request - retrying cannot help.
 * not_found: the remote voice does not exist.
 */
export type ProviderErrorClass = 'retryable' | 'capacity' | 'fatal' | 'not_found';

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
