/**
 * Every problem `code` the API answers, with the sentence its page (`GET /problems/{code}`, the
 * problem's `type` URI) and the OpenAPI `ProblemCode` enum show. A unit test checks that every code
 * written in src/ is here, so a client generated from the spec knows each one.
 */
export const PROBLEM_TYPES = {
  bad_request: 'The request could not be read (a malformed header, an aborted body).',
  unauthorized: 'A valid bearer token is required: missing, malformed, expired or wrongly signed.',
  forbidden: 'The token lacks the scope this route needs.',
  not_found: 'No route answers this path.',
  voice_not_found:
    'No voice with this id belongs to the caller (another user’s voice answers the same).',
  method_not_allowed: 'The route does not take this HTTP method.',
  conflict: 'The request conflicts with the current state of the resource.',
  voice_deleted: 'The voice is deleted; it cannot be activated or changed.',
  voice_failed: 'The voice failed (see its `failure`); an admin may queue it again.',
  voice_not_failed: 'Only a failed voice can be retried.',
  cleanup_pending: 'The voice’s remote copy is still being removed; try again shortly.',
  idempotency_key_reused: 'This Idempotency-Key was used with a different request.',
  idempotency_conflict: 'A request with this Idempotency-Key is still in progress.',
  payload_too_large: 'The request body is larger than the route accepts.',
  sample_too_large: 'The voice sample is larger than UPLOAD_MAX_BYTES.',
  unsupported_media_type: 'The body’s media type (or the sample’s format) is not accepted.',
  malformed_json: 'The JSON body is malformed.',
  malformed_multipart: 'The multipart body is malformed or lacks a required part.',
  validation_failed:
    'A field, query parameter or path parameter is invalid; the detail says which.',
  sample_too_short: 'The voice sample is shorter than the provider needs.',
  sample_too_long: 'The voice sample is longer than accepted.',
  sample_unreadable: 'The voice sample could not be read as audio.',
  provider_unavailable: 'The provider is not enabled on this service.',
  webhook_url_refused:
    'The webhook URL is not allowed: not http(s), plain http in production, credentials in it, or a private, loopback or reserved address.',
  user_pending_limit: 'The user has too many voices waiting; wait for some to be ready.',
  upload_too_slow: 'The upload arrived slower than UPLOAD_MIN_BYTES_PER_SECOND and was cut.',
  rate_limited: 'Too many requests; wait for Retry-After seconds.',
  internal_error: 'The service failed; nothing was changed. Retrying is safe.',
  bad_gateway: 'An upstream answered badly; retrying is safe.',
  service_unavailable: 'The service cannot take the request now; retry after a while.',
  storage_unavailable: 'Sample storage is unreachable; retry after a while.',
  auth_unavailable: 'The identity provider’s keys could not be fetched; retry after a while.',
  gateway_timeout: 'An upstream did not answer in time; retrying is safe.',
} as const satisfies Record<string, string>;

export type ProblemCode = keyof typeof PROBLEM_TYPES;
export const PROBLEM_CODES = Object.keys(PROBLEM_TYPES) as ProblemCode[];

/**
 * The `type` of a problem: a path on the service itself, resolved against the request's URL
 * (RFC 9457 §3.1.1 allows a relative reference), so it opens a page wherever the service runs.
 */
export const problemTypeUri = (code: string): string => `/problems/${code}`;

export const isProblemCode = (code: string): code is ProblemCode =>
  Object.prototype.hasOwnProperty.call(PROBLEM_TYPES, code);
