import type { TestWorld } from '../../../test/support/service';
import { distribution, round, waitUntil, type Distribution } from '../../lib/common';
import { insertQueued } from '../../lib/world';
import type { EventSource, Receiver } from './load';

export async function delivered(receiver: Receiver, source: EventSource, timeoutMs: number) {
  await waitUntil(
    'every event delivered',
    () =>
      Promise.resolve(
        [...source.committedAt.keys()].every((id) => receiver.firstSeen.has(id)) ? true : undefined,
      ),
    timeoutMs,
    100,
  ).catch(() => undefined); // counted by the correctness check instead
}

export function latencies(
  receiver: Receiver,
  source: EventSource,
): Distribution & { count: number } {
  const values: number[] = [];
  for (const [id, at] of source.committedAt) {
    const got = receiver.firstSeen.get(id);
    if (got !== undefined) values.push(got - at);
  }
  return { ...distribution(values, 1), count: values.length };
}

/** Inserts `count` queued voices and waits until all are ready or failed: throughput.ts's measure. */
export async function allocate(
  world: TestWorld,
  prefix: string,
  count: number,
  sampleBytes: number,
): Promise<{ perSecond: number; seconds: number; ready: number; failed: number }> {
  await world.db((c) =>
    insertQueued(c, { count, provider: 'elevenlabs', users: 50, userPrefix: prefix, sampleBytes }),
  );
  const counts = await waitUntil(
    `${count} voices of ${prefix}* settled`,
    () =>
      world.db(async (c) => {
        const { rows } = await c.query<{ ready: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE status = 'ready')::int AS ready,
                  count(*) FILTER (WHERE status = 'failed')::int AS failed
             FROM voices WHERE user_id LIKE $1`,
          [`${prefix}%`],
        );
        return rows[0].ready + rows[0].failed >= count ? rows[0] : undefined;
      }),
    600_000,
    100,
  );
  const span = await world.db(async (c) => {
    const { rows } = await c.query<{ seconds: number }>(
      `SELECT EXTRACT(EPOCH FROM max(e.created_at) FILTER (WHERE e.type = 'ready')
                              - min(e.created_at) FILTER (WHERE e.type = 'claimed'))::float8 AS seconds
         FROM voice_events e JOIN voices v ON v.id = e.voice_id WHERE v.user_id LIKE $1`,
      [`${prefix}%`],
    );
    return rows[0].seconds;
  });
  return {
    perSecond: round(count / span, 1),
    seconds: round(span, 3),
    ready: counts.ready,
    failed: counts.failed,
  };
}
