import type { IncomingMessage, ServerResponse } from 'node:http';
import { securityHeaders } from './security-headers';

function headersFor(url: string): Record<string, unknown> {
  const headers = new Map<string, unknown>();
  const res = {
    setHeader: (name: string, value: unknown) => headers.set(name.toLowerCase(), value),
    removeHeader: (name: string) => headers.delete(name.toLowerCase()),
  } as unknown as ServerResponse;
  securityHeaders()({ method: 'GET', url, headers: {} } as IncomingMessage, res, () => undefined);
  return Object.fromEntries(headers);
}

describe('securityHeaders', () => {
  it.each(['/v1/voices', '/v1/voices/x/activate?waitSeconds=5', '/health/live', '/metrics'])(
    'gives the JSON answer at %s the API set: nothing may load, frame or sniff it',
    (url) => {
      const h = headersFor(url);
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
    (url) => {
      const h = headersFor(url);
      expect(h['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
      expect(h['x-frame-options']).toBe('DENY');
    },
  );

  it.each(['/v1/voices', '/v1/admin/voices?status=failed', '/V1/providers'])(
    'keeps the authenticated answer at %s out of every cache',
    (url) => {
      expect(headersFor(url)['cache-control']).toBe('no-store');
    },
  );

  it.each(['/health/live', '/metrics', '/docs'])('leaves caching of %s alone', (url) => {
    expect(headersFor(url)['cache-control']).toBeUndefined();
  });

  it.each(['/docs', '/docs/swagger-ui.css', '/admin/queues', '/nope', '/v1x', '/healthz'])(
    "gives %s helmet's full set for pages",
    (url) => {
      const h = headersFor(url);
      expect(h['content-security-policy']).toContain("default-src 'self'");
      expect(h['content-security-policy']).toContain("script-src 'self'");
      expect(h['x-frame-options']).toBe('SAMEORIGIN');
      expect(h['cross-origin-opener-policy']).toBe('same-origin');
      expect(h['x-content-type-options']).toBe('nosniff');
    },
  );
});
