import { randomBytes } from 'node:crypto';
import { ApiClient } from './support/api';
import { storedFiles, voiceRows } from './support/hostile';
import { ServiceProcess, TestWorld } from './support/service';

describe('rate limits on two replicas', () => {
  const world = new TestWorld();
  let replicas: ServiceProcess[];
  const UPLOADS = 3;
  const ACTIVATIONS = 4;
  const READS = 20;
  const WRITES = 5;

  beforeAll(async () => {
    const env = {
      RATE_LIMIT_UPLOADS_PER_MINUTE: String(UPLOADS),
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: String(ACTIVATIONS),
      RATE_LIMIT_READS_PER_MINUTE: String(READS),
      RATE_LIMIT_WRITES_PER_MINUTE: String(WRITES),
      LOG_LEVEL: 'error',
    };
    // One full replica first (it migrates), then an API-only one beside it.
    const first = await world.start(env);
    replicas = [first, await world.start({ ...env, APP_ROLES: 'api' })];
  }, 60_000);

  afterAll(() => world.dispose(), 30_000);

  const as = (user: string, replica: number) => new ApiClient(replicas[replica].url, user);

  it('limits uploads per user across replicas, answering 429 rate_limited with Retry-After', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < UPLOADS; i++) statuses.push((await as('alice', i % 2).upload()).status);
    expect(statuses).toEqual([202, 202, 202]);
    const rowsBefore = (await voiceRows(world)).length;

    for (const replica of [0, 1]) {
      const limited = await as('alice', replica).upload();
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toContain('application/problem+json');
      expect(limited.body).toMatchObject({ status: 429, code: 'rate_limited' });
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // A refused upload stored nothing.
    expect((await voiceRows(world)).length).toBe(rowsBefore);
    expect(storedFiles(world)).toHaveLength(rowsBefore);

    // Another user has a budget of their own, and reads have a budget of their own.
    expect((await as('bob', 1).upload()).status).toBe(202);
    expect((await as('alice', 0).request('GET', '/v1/voices')).status).toBe(200);
  });

  it('limits activations per user across replicas, and not another user', async () => {
    const carol = as('carol', 0);
    const up = await carol.upload();
    expect(up.status).toBe(202);
    const dave = as('dave', 1);
    const daveUp = await dave.upload();
    const statuses: number[] = [];
    for (let i = 0; i < ACTIVATIONS; i++) {
      statuses.push(
        (await as('carol', i % 2).request('POST', `/v1/voices/${up.body.id}/activate`)).status,
      );
    }
    expect(statuses.every((s) => s === 200 || s === 202)).toBe(true);
    const limited = await as('carol', 1).request('POST', `/v1/voices/${up.body.id}/activate`);
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Still allowed: another user's activations, and the limited user's reads.
    const other = await dave.request('POST', `/v1/voices/${daveUp.body.id}/activate`);
    expect([200, 202]).toContain(other.status);
    expect((await carol.request('GET', `/v1/voices/${up.body.id}`)).status).toBe(200);
  });
  /** A refusal as the contract says: problem document, Retry-After, the budget's headers. */
  const expectLimited = (
    res: { status: number; headers: Headers; body: { code?: string; status?: number } },
    budget: string,
    limit: number,
  ) => {
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 429, code: 'rate_limited' });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get(`x-ratelimit-limit-${budget}`)).toBe(String(limit));
    expect(res.headers.get(`x-ratelimit-remaining-${budget}`)).toBe('0');
  };
  const someId = () => '00000000-0000-4000-8000-' + randomBytes(6).toString('hex');

  it('limits a flood of reads per user across replicas, with 429 and the reads headers', async () => {
    const erin = (replica: number) => as('erin', replica);
    const first = await erin(0).request('GET', '/v1/voices');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-reads')).toBe(String(READS));
    expect(first.headers.get('x-ratelimit-remaining-reads')).toBe(String(READS - 1));
    // Every read route spends the same budget: the list, one voice, the same on both replicas.
    const flood = await Promise.all(
      Array.from({ length: 3 * READS }, (_, i) =>
        erin(i % 2).request('GET', i % 3 ? '/v1/voices' : `/v1/voices/${someId()}`),
      ),
    );
    const admitted = flood.filter((r) => r.status !== 429);
    expect(admitted).toHaveLength(READS - 1);
    expect(admitted.every((r) => r.status === 200 || r.body.code === 'voice_not_found')).toBe(true);
    for (const r of flood.filter((x) => x.status === 429)) expectLimited(r, 'reads', READS);
    // Another user's reads are still served.
    expect((await as('fay', 1).request('GET', '/v1/voices')).status).toBe(200);
  });

  it('keeps writes and reads apart: spent writes leave reads their own budget, and back', async () => {
    const gus = (replica: number) => as('gus', replica);
    for (let i = 0; i < WRITES; i++) {
      const res = await gus(i % 2).request('DELETE', `/v1/voices/${someId()}`);
      expect([res.status, res.body.code]).toEqual([404, 'voice_not_found']);
      expect(res.headers.get('x-ratelimit-limit-writes')).toBe(String(WRITES));
    }
    expectLimited(await gus(0).request('DELETE', `/v1/voices/${someId()}`), 'writes', WRITES);
    expectLimited(await gus(1).request('DELETE', `/v1/voices/${someId()}`), 'writes', WRITES);
    // Reads: up to their own budget, no further.
    const reads = [];
    for (let i = 0; i < READS + 2; i++)
      reads.push((await gus(i % 2).request('GET', '/v1/voices')).status);
    expect(reads).toEqual([...Array<number>(READS).fill(200), 429, 429]);

    // The other way round: reads spent, writes still pass.
    const hal = as('hal', 0);
    for (let i = 0; i < READS; i++)
      expect((await hal.request('GET', '/v1/voices')).status).toBe(200);
    expectLimited(await hal.request('GET', '/v1/voices'), 'reads', READS);
    const write = await hal.request('DELETE', `/v1/voices/${someId()}`);
    expect([write.status, write.body.code]).toEqual([404, 'voice_not_found']);
  });

  it('limits admin routes too', async () => {
    const admin = (replica: number) => new ApiClient(replicas[replica].url, 'root', 'admin');
    const reads = await Promise.all(
      Array.from({ length: READS + 5 }, (_, i) =>
        admin(i % 2).request('GET', i % 2 ? '/v1/providers' : '/v1/admin/voices'),
      ),
    );
    expect(reads.filter((r) => r.status === 200)).toHaveLength(READS);
    for (const r of reads.filter((x) => x.status !== 200)) expectLimited(r, 'reads', READS);
    // The queue board spends the same budget, and refuses the same way.
    expectLimited(await admin(0).request('GET', '/admin/queues/api/queues'), 'reads', READS);
    expectLimited(await admin(1).request('GET', '/admin/queues'), 'reads', READS);
    const other = new ApiClient(replicas[0].url, 'root2', 'admin');
    expect((await other.request('GET', '/admin/queues/api/queues')).status).toBe(200);
    const writes = [];
    for (let i = 0; i < WRITES + 1; i++)
      writes.push(await admin(i % 2).request('POST', `/v1/admin/voices/${someId()}/retry`));
    expect(writes.slice(0, WRITES).map((r) => r.status)).toEqual(Array<number>(WRITES).fill(404));
    expectLimited(writes[WRITES], 'writes', WRITES);
  });
});
