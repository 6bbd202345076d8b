import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from '../src/database/data-source';
import { WebhooksRepository } from '../src/webhooks/webhooks.repository';
import { TestWorld } from './support/service';

/**
 * The delivery claim on the real Postgres: at most WEBHOOK_CONCURRENCY_PER_ENDPOINT in flight per
 * endpoint across workers (the leases are counted among the endpoint's oldest due deliveries, with
 * no index of their own), a slow endpoint never holding back another's, an expired lease taken
 * again, and a failed first attempt's body kept for the retry.
 */
describe('webhook delivery claim on Postgres', () => {
  const world = new TestWorld();
  let ds: DataSource;
  let repo: WebhooksRepository;

  beforeAll(async () => {
    await runMigrations(world.databaseUrl);
    ds = new DataSource({ ...dataSourceOptions(world.databaseUrl), extra: { max: 10 } });
    await ds.initialize();
    repo = new WebhooksRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await world.dispose();
  });

  beforeEach(async () => {
    await ds.query('TRUNCATE webhook_endpoints CASCADE');
  });

  /** An endpoint with `n` deliveries due, the oldest first. */
  async function endpointWith(n: number, tag: string): Promise<string> {
    const url = `https://${tag}.example/hooks`;
    const { id } = await repo.createEndpoint(url, ['voice.failed'], 'whsec_dGVzdA==');
    await ds.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, next_attempt_at)
       SELECT $1, 'evt_' || $2 || '_' || g, 'voice.failed', now() - (1000 - g) * interval '1 ms'
         FROM generate_series(1, $3::int) g`,
      [id, tag, n],
    );
    return id;
  }

  const byEndpoint = (claimed: { endpointId: string }[], id: string) =>
    claimed.filter((d) => d.endpointId === id).length;

  it('keeps each endpoint within its places across claims, and the others unaffected', async () => {
    const slow = await endpointWith(50, 'slow');
    const fast = await endpointWith(3, 'fast');
    // Two workers' claims, one after the other: the second sees the first's leases.
    const first = await repo.claimDue(64, 4, 20);
    const second = await repo.claimDue(64, 4, 20);
    expect(byEndpoint(first, slow)).toBe(4);
    expect(byEndpoint(first, fast)).toBe(3);
    expect(second).toHaveLength(0);
    // Oldest due first.
    const slowIds = first.filter((d) => d.endpointId === slow).map((d) => d.eventId);
    expect(slowIds).toEqual(['evt_slow_1', 'evt_slow_2', 'evt_slow_3', 'evt_slow_4']);
    // One slow delivery recorded as failed (retry later): one place frees, and only one.
    const [done] = first.filter((d) => d.endpointId === slow);
    await repo.recordAttempts([
      {
        id: done.id,
        attempt: { at: new Date().toISOString(), status: 500, error: null, durationMs: 3 },
        delivered: false,
        retryInSeconds: 60,
        payload: '{"type":"voice.failed"}',
      },
    ]);
    const third = await repo.claimDue(64, 4, 20);
    expect(third.map((d) => d.eventId)).toEqual(['evt_slow_5']);
  });

  it('takes a delivery again once its lease has expired, with the body its failed attempt kept', async () => {
    const id = await endpointWith(1, 'x');
    const [d] = await repo.claimDue(64, 4, 20);
    expect(d.payload).toBeNull();
    await repo.recordAttempts([
      {
        id: d.id,
        attempt: { at: new Date().toISOString(), status: null, error: 'timeout', durationMs: 15 },
        delivered: false,
        retryInSeconds: 0,
        payload: '{"kept":true}',
      },
    ]);
    const [again] = await repo.claimDue(64, 4, 20);
    expect(again).toMatchObject({ id: d.id, attempts: 1, payload: '{"kept":true}' });
    // A worker that died holding it: the lease runs out and the delivery is due again.
    await ds.query(`UPDATE webhook_deliveries SET lease_until = now() - interval '1 s'`);
    const [taken] = await repo.claimDue(64, 4, 20);
    expect(taken).toMatchObject({ id: d.id, endpointId: id });
    // A delivered one keeps no body and is never taken again.
    await repo.recordAttempts([
      {
        id: d.id,
        attempt: { at: new Date().toISOString(), status: 204, error: null, durationMs: 2 },
        delivered: true,
        retryInSeconds: 0,
        payload: null,
      },
    ]);
    await ds.query(`UPDATE webhook_deliveries SET lease_until = NULL`);
    expect(await repo.claimDue(64, 4, 20)).toHaveLength(0);
  });
});
