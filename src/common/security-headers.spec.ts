import fastify, { type FastifyInstance } from 'fastify';
import helmet from 'helmet';
import { registerSecurityHeaders } from './security-headers';

// helmet itself, counted: making its middleware is the costly step, owed once per profile.
jest.mock('helmet', () => {
  const actual = jest.requireActual<typeof import('helmet')>('helmet');
  return { __esModule: true, ...actual, default: jest.fn(actual.default) };
});

let app: FastifyInstance;

beforeAll(async () => {
  // One route, so both matched paths and 404s are asked (the hook runs for both).
  app = fastify();
  registerSecurityHeaders(app);
  app.get('/v1/voices', () => ({ items: [] }));
  await app.ready();
});

afterAll(() => app.close());

async function headersFor(url: string): Promise<Record<string, unknown>> {
  return (await app.inject({ method: 'GET', url })).headers;
}

describe('registerSecurityHeaders', () => {
  it.each(['/v1/voices', '/v1/voices/x/activate?waitSeconds=5', '/health/live', '/metrics'])(
    'gives the JSON answer at %s the API set: nothing may load, frame or sniff it',
    async (url) => {
      const h = await headersFor(url);
      expect(h['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
      expect(h['x-frame-options']).toBe('DENY');
      expect(h['x-content-type-options']).toBe('nosniff');
      expect(h['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(h['cross-origin-resource-policy']).toBe('same-origin');
      expect(h['referrer-policy']).toBe('no-referrer');
      // Switches for documents only.
      expect(h['x-xss-protection']).toBeUndefined();
      expect(h['cross-origin-opener-policy']).toBeUndefined();
    },
  );

  it.each(['/V1/voices', '/v1/VOICES', '/HEALTH/live', '/Metrics'])(
    'gives %s, the same route in other letter case, the API set as well',
    async (url) => {
      const h = await headersFor(url);
      expect(h['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
      expect(h['x-frame-options']).toBe('DENY');
    },
  );

  it.each(['/v1/voices', '/v1/admin/voices?status=failed', '/V1/providers'])(
    'keeps the authenticated answer at %s out of every cache',
    async (url) => {
      expect((await headersFor(url))['cache-control']).toBe('no-store');
    },
  );

  it.each(['/health/live', '/metrics', '/docs'])('leaves caching of %s alone', async (url) => {
    expect((await headersFor(url))['cache-control']).toBeUndefined();
  });

  it.each(['/docs', '/docs/swagger-ui.css', '/admin/queues', '/nope', '/v1x', '/healthz'])(
    "gives %s helmet's full set for pages",
    async (url) => {
      const h = await headersFor(url);
      expect(h['content-security-policy']).toContain("default-src 'self'");
      expect(h['content-security-policy']).toContain("script-src 'self'");
      expect(h['x-frame-options']).toBe('SAMEORIGIN');
      expect(h['cross-origin-opener-policy']).toBe('same-origin');
      expect(h['x-content-type-options']).toBe('nosniff');
    },
  );

  it("makes helmet's middleware once per profile, not once per request", async () => {
    const made = jest.mocked(helmet).mock.calls.length;
    for (const url of ['/v1/voices', '/docs', '/nope']) await headersFor(url);
    expect(jest.mocked(helmet).mock.calls.length).toBe(made);
    expect(made).toBe(2);
  });
});
