/**
 * What a client may see of a failure: our stable code and plain words. The raw detail (a
 * provider's message, a parser's text, hosts and paths in them) stays in the row, the logs and the
 * admin view (GET /v1/admin/voices), where it helps whoever fixes it; a client could only leak it.
 */
export interface PublicFailure {
  code: string;
  message: string;
}

const PLAIN: Record<string, string> = {
  sample_unreadable: 'The audio could not be read.',
  sample_too_short: 'The sample is shorter than the accepted duration.',
  sample_too_long: 'The sample is longer than the accepted duration.',
  attempts_exhausted: 'The provider could not clone the voice after several attempts.',
  provider_rejected: 'The provider refused to clone this voice.',
};

/**
 * Our own codes pass as they are; anything else was named by a provider (its error code, any
 * string it chose) and becomes provider_rejected.
 */
export function publicFailure(code: string | null): PublicFailure {
  const ours = code !== null && code in PLAIN ? code : 'provider_rejected';
  return { code: ours, message: PLAIN[ours] };
}
