import { QUEUED_AHEAD_SQL } from '../src/voice/queue-position.repository';
import { ApiClient } from './support/api';
import { metric } from './support/prometheus';
import { ServiceProcess, TestWorld } from './support/service';

describe('a deep queue', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  const DEPTH = 20_000;
  const MAX = 1000;
  beforeAll(async () => {
    service = await world.start({
      SANDBOX_VOICE_LIMIT: '0',
      QUEUE_POSITION_MAX: String(MAX),
      METRICS_REFRESH_SECONDS: '3600',
      LOG_LEVEL: 'error',
    });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('answers a queued voice with a bounded count, cheaply, and /metrics from one refresh', async () => {
    const before = await (await fetch(`${service.url}/metrics`)).text();
    const refreshedAt = metric(before, 'voice_slots_metrics_refreshed_timestamp_seconds')[0];
    const depth = metric(before, 'voice_slots_queue_depth', '{provider="elevenlabs"}')[0];
    expect(refreshedAt).toBeGreaterThan(0);

    const alice = new ApiClient(service.url, 'alice');
    const id = (await alice.upload()).body.id as string;
    const voice = await alice.waitFor(id, ['queued']);
    expect(voice.queue).toMatchObject({ position: 1, positionAtLeast: false });
    // DEPTH voices of other users, all ahead of alice's in the claim order.
    await world.db(async (c) => {
      await c.query(
        `INSERT INTO voices
         SELECT (jsonb_populate_record(v, jsonb_build_object(
                   'id', gen_random_uuid(), 'user_id', 'deep-' || i, 'name', 'deep ' || i,
                   'sample_key', 'deep/' || i, 'fair_tag', v.fair_tag - $2::int - 1 + i))).*
           FROM voices v, generate_series(0, $2::int - 1) i WHERE v.id = $1`,
        [id, DEPTH],
      );
      await c.query('ANALYZE voices');
    });

    const deep = await alice.get(id);
    expect(deep.queue).toMatchObject({ position: MAX + 1, positionAtLeast: true });
    const sixth = await new ApiClient(service.url, 'deep-5').request('GET', '/v1/voices');
    const sixthId = sixth.body.items[0].id as string;
    expect((await new ApiClient(service.url, 'deep-5').get(sixthId)).queue).toMatchObject({
      position: 6,
      positionAtLeast: false,
    });

    // The plan of the count behind that answer: it stops after MAX + 1 index entries.
    const plan = await world.db(async (c) => {
      const params = await c.query<{ fair_tag: string; queued_at: Date }>(
        'SELECT fair_tag, queued_at FROM voices WHERE id = $1',
        [id],
      );
      const { fair_tag, queued_at } = params.rows[0];
      const explain = async (sql: string, args: unknown[]) =>
        (
          await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
            `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
            args,
          )
        ).rows[0]['QUERY PLAN'][0].Plan;
      const args = ['elevenlabs', fair_tag, queued_at, id];
      return {
        bounded: await explain(QUEUED_AHEAD_SQL, [...args, MAX]),
        // What the count cost before it was bounded: every voice ahead.
        full: await explain(QUEUED_AHEAD_SQL.replace(/\s+LIMIT \$5::int \+ 1/, ''), args),
      };
    });
    const rows = (p: PlanNode): number =>
      Math.max(p['Actual Rows'] * (p['Actual Loops'] ?? 1), ...(p.Plans ?? []).map(rows));
    const buffers = (p: PlanNode) => p['Shared Hit Blocks'] + p['Shared Read Blocks'];
    expect(rows(plan.full)).toBeGreaterThanOrEqual(DEPTH);
    expect(rows(plan.bounded)).toBeLessThanOrEqual(MAX + 1);
    expect(buffers(plan.bounded) * 4).toBeLessThan(buffers(plan.full));

    // /metrics: a burst of scrapes is served from the refresh before the rows went in.
    const burst = await Promise.all(
      Array.from({ length: 30 }, async () => (await fetch(`${service.url}/metrics`)).text()),
    );
    for (const text of burst) {
      expect(metric(text, 'voice_slots_metrics_refreshed_timestamp_seconds')[0]).toBe(refreshedAt);
      expect(metric(text, 'voice_slots_queue_depth', '{provider="elevenlabs"}')[0]).toBe(depth);
    }
  }, 90_000);
});

interface PlanNode {
  'Actual Rows': number;
  'Actual Loops'?: number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
  Plans?: PlanNode[];
}
