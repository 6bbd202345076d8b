import { assertTransition } from './voice-status';

// The reclaim chooses its victims under the provider's row lock and marks them in the same
// statement (two statements would let an activation slip between the choice and the mark), so
// this write is handed out as SQL that reclaim/ composes into that statement. It lives here so
// that voice/ owns every write of the voices table but the claim and lease statements of slots/.
assertTransition(['ready'], 'reclaiming');

/**
 * CTEs `u` and `e`: the voices of the CTE `picked` (columns `id`, and `tid` when `byAddress`) that
 * are still ready become `reclaiming` under a new fencing token, each with its event row whose
 * metadata is the SQL expression `metadata` (over u's columns). `u` returns id, fencing_token,
 * remote_voice_id, last_used_at and provider. Both arguments are code, never outside input.
 */
export function reclaimingWrite(opts: { byAddress: boolean; metadata: string }): string {
  const match = opts.byAddress ? 'v.ctid = picked.tid AND v.id = picked.id' : 'v.id = picked.id';
  return `u AS (
           UPDATE voices v SET status = 'reclaiming', fencing_token = v.fencing_token + 1, updated_at = now()
             FROM picked WHERE ${match} AND v.status = 'ready'
           RETURNING v.id, v.fencing_token, v.remote_voice_id, v.last_used_at, v.provider),
         e AS (
           INSERT INTO voice_events (voice_id, type, reason, from_status, to_status, metadata)
           SELECT id, 'reclaiming', 'idle_reclaim', 'ready', 'reclaiming', ${opts.metadata} FROM u)`;
}
