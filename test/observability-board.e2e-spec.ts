import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule } from '../src/app.module';
import { loadConfig } from '../src/config/app-config';
import { runMigrations } from '../src/database/data-source';
import { QueueBoardModule } from '../src/ops/queue-board.module';
import { QueueName } from '../src/queue/queues';
import { parseMetrics, sampleValue } from './support/prometheus';
import { TestWorld } from './support/service';
import { makeToken } from './support/token';

/**
 * Bull Board at /admin/queues: admins see every queue, everyone else gets the API's problem
 * documents. Boots the application module with the board module in this process, as
 * app.module.ts imports it, so the test does not depend on where that import lives.
 */
describe('Bull Board for operators', () => {
  const world = new TestWorld();
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    const config = loadConfig({ ...world.env(), APP_ROLES: 'api', LOG_LEVEL: 'silent' });
    await runMigrations(config.DATABASE_URL);
    @Module({ imports: [AppModule.forRoot(config), QueueBoardModule] })
    class BoardTestModule {}
    app = await NestFactory.create(BoardTestModule, new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterAll(async () => {
    await app?.close();
    await world.dispose();
  });

  const get = (path: string, token?: string) =>
    fetch(`${url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('refuses requests without an admin token with problem documents', async () => {
    const anonymous = await get('/admin/queues');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toContain('application/problem+json');
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(await anonymous.json()).toMatchObject({ status: 401, code: 'unauthorized' });

    const forged = await get(
      '/admin/queues/api/queues',
      makeToken('root', 'admin', { secret: 'another-secret-of-some-length' }),
    );
    expect(forged.status).toBe(401);

    const user = await get(
      '/admin/queues/api/queues',
      makeToken('alice', 'voices:read voices:write'),
    );
    expect(user.status).toBe(403);
    expect(await user.json()).toMatchObject({ code: 'forbidden' });
  });

  it('shows admins the board and every queue of the service', async () => {
    const admin = makeToken('root', 'admin');
    const page = await get('/admin/queues', admin);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<base href="/admin/queues/"');

    const api = await get('/admin/queues/api/queues', admin);
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string; type: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(Object.values(QueueName).sort());
  });

  it('counts board requests under one route label', async () => {
    const s = parseMetrics(await (await get('/metrics')).text());
    expect(
      sampleValue(s, 'voice_slots_http_request_duration_seconds_count', {
        route: '/admin/queues/*',
        status: '401',
      }),
    ).toBeGreaterThan(0);
    expect(s.some((x) => x.labels.route?.startsWith('/admin/queues/api'))).toBe(false);
  });
});
