import { ApiError } from '../common/problem';
import { isUuid } from '../common/uuid';
import type { Voice } from './voice';

/** The list's keyset cursor: the last item's (createdAt, id), opaque to clients. */
export function encodeCursor(v: Voice): string {
  return Buffer.from(JSON.stringify([v.createdAt.toISOString(), v.id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const [at, id] = Array.isArray(decoded) ? (decoded as unknown[]) : [];
    const createdAt = new Date(typeof at === 'string' ? at : NaN);
    const year = createdAt.getUTCFullYear();
    // Anything a cursor of ours cannot hold is refused here rather than by Postgres.
    if (Number.isNaN(year) || year < 1970 || year > 9999 || !isUuid(id)) {
      throw new Error('bad cursor');
    }
    return { createdAt, id };
  } catch {
    throw new ApiError(422, 'validation_failed', 'cursor is invalid');
  }
}
