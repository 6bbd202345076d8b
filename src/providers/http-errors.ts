import type { ProviderErrorClass } from './provider-error';

/** Reading what a provider answered when it went wrong: status, error body, Retry-After, cause. */

export interface ErrorClassification {
  errorClass: ProviderErrorClass;
  code: string;
  message: string;
}

/** Turns a non-2xx answer into a classification, reading the provider's own error code. */
export type ErrorClassifier = (status: number, body: string) => ErrorClassification;

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Null when absent or unreadable, so
 * the caller falls back to its own backoff instead of trusting a made-up number.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value == null) return null;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  // An HTTP date always names a day and a month; without letters Date.parse reads "-3" as a year.
  const at = /[a-z]/i.test(trimmed) ? Date.parse(trimmed) : NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Error body text for classifiers that read JSON, or null when it is not JSON. */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** The shared part of both providers' rules: throttling, server trouble and timeouts pass. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Message plus the low-level cause fetch hides behind "fetch failed" (ECONNRESET, ...). Duck-typed:
 * errors from fetch may come from another realm (test sandboxes), where instanceof fails.
 */
export function describe(err: unknown): string {
  const e = asErrorLike(err);
  if (!e) return String(err);
  const cause = asErrorLike(e.cause);
  if (!cause) return e.message;
  const code = typeof cause.code === 'string' ? ` ${cause.code}` : '';
  return `${e.message}:${code} ${cause.message}`;
}

export function asErrorLike(
  value: unknown,
): { message: string; name?: unknown; code?: unknown; cause?: unknown } | null {
  return typeof value === 'object' && value !== null && 'message' in value
    ? (value as { message: string })
    : null;
}
