import { createHmac } from 'node:crypto';

/** The service's development secret (src/config/app-config.ts DEV_JWT_SECRET). */
export const TEST_JWT_SECRET = 'test-secret-for-the-e2e-suites-only';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * An HS256 JWT signed like an identity provider would. Signed here with node:crypto so the test
 * process does not load the service's ESM-only JWT library.
 */
export function makeToken(
  sub: string,
  scope = 'voices:read voices:write',
  opts: { secret?: string; expiresIn?: number; alg?: string } = {},
): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64({ alg: opts.alg ?? 'HS256', typ: 'JWT' });
  const payload = b64({ sub, scope, iat: now, exp: now + (opts.expiresIn ?? 3600) });
  const sig = createHmac('sha256', opts.secret ?? TEST_JWT_SECRET)
    .update(`${header}.${payload}`)
    .digest('base64url');
  return `${header}.${payload}.${sig}`;
}
