import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import { constantHeaders, type HttpMiddleware } from './constant-headers';

/** The headers a middleware leaves on a response that already had X-Powered-By. */
function headersAfter(middleware: HttpMiddleware, req: Partial<IncomingMessage>) {
  const headers = new Map<string, unknown>([['x-powered-by', 'Express']]);
  const res = {
    setHeader: (name: string, value: unknown) => headers.set(name.toLowerCase(), value),
    removeHeader: (name: string) => headers.delete(name.toLowerCase()),
  } as unknown as ServerResponse;
  let passed = false;
  middleware(req as IncomingMessage, res, () => (passed = true));
  return { passed, headers: Object.fromEntries(headers) };
}

describe('constantHeaders', () => {
  const options = {
    contentSecurityPolicy: { useDefaults: true, directives: { upgradeInsecureRequests: null } },
  };

  it("sets exactly helmet's headers, whatever the request", () => {
    const requests: Partial<IncomingMessage>[] = [
      { method: 'GET', url: '/docs', headers: {} },
      { method: 'POST', url: '/v1/voices/x/activate', headers: { origin: 'https://a.example' } },
      { method: 'OPTIONS', url: '/v1/voices', headers: { 'x-forwarded-proto': 'https' } },
    ];
    for (const req of requests) {
      const fast = headersAfter(constantHeaders(helmet(options)), req);
      expect(fast).toEqual(headersAfter(helmet(options), req));
      expect(fast.passed).toBe(true);
      expect(fast.headers['x-powered-by']).toBeUndefined();
      expect(fast.headers['content-security-policy']).toContain("default-src 'self'");
    }
  });

  it('refuses at start a middleware that does not pass the request on', () => {
    expect(() => constantHeaders((_req, _res, _next) => undefined)).toThrow(/did not pass/);
  });
});
