/**
 * How the service's idempotency key lives in a remote voice's own metadata. Neither provider has
 * idempotency keys, so the key rides along with the voice: in ElevenLabs' labels (as `vs_key`) and,
 * for both providers, in the description as `vs_key:<key>`, because the description is the one
 * field both providers return and ElevenLabs' search looks into.
 */
export const KEY_LABEL = 'vs_key';

const DESCRIPTION_KEY = /(?:^|\s)vs_key:([^\s,;]+)/;

/** The description written on voices the service creates. */
export function describeKey(idempotencyKey: string): string {
  return `${KEY_LABEL}:${idempotencyKey}`;
}

/** The key found in a description, or null. */
export function keyFromDescription(description: unknown): string | null {
  if (typeof description !== 'string') return null;
  return DESCRIPTION_KEY.exec(description)?.[1] ?? null;
}

/** The key of a voice: labels win over the description, as labels are structured. */
export function keyFromMetadata(labels: unknown, description: unknown): string | null {
  const record = asRecord(labels);
  const label = record?.[KEY_LABEL];
  if (typeof label === 'string' && label.length > 0) return label;
  return keyFromDescription(description);
}

/** A plain object, or null for anything else (arrays included). */
export function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

export function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/**
 * Walks pages until `match` finds an item. Stops on a repeated cursor too: a provider that keeps
 * answering the same cursor must not turn a lookup into an endless loop.
 */
export async function findInPages<T>(
  fetchPage: (cursor: string | null) => Promise<{ voices: T[]; nextCursor: string | null }>,
  match: (item: T) => boolean,
): Promise<T | null> {
  const seen = new Set<string>();
  let cursor: string | null = null;
  for (;;) {
    const page = await fetchPage(cursor);
    const found = page.voices.find(match);
    if (found) return found;
    if (!page.nextCursor || seen.has(page.nextCursor)) return null;
    seen.add(page.nextCursor);
    cursor = page.nextCursor;
  }
}
