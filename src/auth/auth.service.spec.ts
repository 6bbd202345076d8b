import {
  claims,
  generateSigningKey,
  signHs256,
  signJwt,
  startJwksServer,
  unsigned,
  type JwksServer,
} from '../../test/support/jws';
import type { AppConfig } from '../config/config.module';
import {
  AuthService,
  AuthUnavailableError,
  InvalidTokenError,
  VERIFIED_TOKEN_TTL_MS,
} from './auth.service';

const SECRET = 'unit-test-secret-of-enough-length';
const hsService = (extra: Partial<AppConfig> = {}) =>
  new AuthService({ AUTH_JWT_SECRET: SECRET, ...extra } as AppConfig);
const past = () => Math.floor(Date.now() / 1000) - 120;

describe('AuthService with AUTH_MAX_TOKEN_AGE_SECONDS', () => {
  const auth = hsService({ AUTH_MAX_TOKEN_AGE_SECONDS: 600 });
  const now = () => Math.floor(Date.now() / 1000);

  it('accepts a token issued within the limit', async () => {
    const p = await auth.verify(signHs256(SECRET, claims('alice', { iat: now() - 60 })));
    expect(p.userId).toBe('alice');
  });

  it.each([
    ['issued too long ago', { iat: now() - 3600, exp: now() + 3600 }],
    ['without iat', { iat: undefined }],
  ])('refuses a token %s, however far off its exp', async (_label, extra) => {
    await expect(auth.verify(signHs256(SECRET, claims('alice', extra)))).rejects.toBeInstanceOf(
      InvalidTokenError,
    );
  });

  it('has no age limit when unset', async () => {
    const p = await hsService().verify(
      signHs256(SECRET, claims('alice', { iat: now() - 86_400 * 30 })),
    );
    expect(p.userId).toBe('alice');
  });
});

describe('AuthService with the shared secret (HS256)', () => {
  const auth = hsService();

  it('accepts a good token and reads user and scopes', async () => {
    const p = await auth.verify(signHs256(SECRET, claims('alice', { scope: 'voices:read admin' })));
    expect(p.userId).toBe('alice');
    expect([...p.scopes]).toEqual(['voices:read', 'admin']);
  });

  it('reads scopes sent as an `scp` array too', async () => {
    const p = await auth.verify(
      signHs256(SECRET, claims('alice', { scope: undefined, scp: ['voices:read', 7] })),
    );
    expect([...p.scopes]).toEqual(['voices:read']);
  });

  it.each([
    ['expired', () => signHs256(SECRET, claims('alice', { exp: past() }))],
    ['not yet valid', () => signHs256(SECRET, claims('alice', { nbf: past() + 3600 }))],
    ['without expiry', () => signHs256(SECRET, claims('alice', { exp: undefined }))],
    ['without sub', () => signHs256(SECRET, claims('alice', { sub: undefined }))],
    ['with an empty sub', () => signHs256(SECRET, claims(''))],
    ['with control characters in sub', () => signHs256(SECRET, claims('al\nice'))],
    ['with a 201-character sub', () => signHs256(SECRET, claims('a'.repeat(201)))],
    ['signed with another secret', () => signHs256('another-secret-entirely', claims('alice'))],
    ['unsigned (alg none)', () => unsigned(claims('alice'))],
    ['claiming none but signed', () => signHs256(SECRET, claims('alice'), { alg: 'none' })],
    ['with its payload changed', () => tamper(signHs256(SECRET, claims('alice')))],
    [
      'RS256 while HS256 is configured',
      () => signJwt(generateSigningKey('RS256', 'k'), claims('a')),
    ],
    ['malformed', () => 'not.a.token'],
    ['two parts', () => 'abc.def'],
    ['garbage base64', () => '!!!.???.###'],
    ['huge', () => signHs256(SECRET, claims('alice', { pad: 'x'.repeat(10_000) }))],
  ])('refuses a token %s', async (_label, token) => {
    await expect(auth.verify(token())).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('checks issuer and audience when configured', async () => {
    const strict = hsService({ AUTH_ISSUER: 'https://id.example', AUTH_AUDIENCE: 'voice-slots' });
    const good = claims('alice', { iss: 'https://id.example', aud: 'voice-slots' });
    await expect(strict.verify(signHs256(SECRET, good))).resolves.toMatchObject({
      userId: 'alice',
    });
    for (const bad of [
      { ...good, iss: 'https://evil.example' },
      { ...good, aud: 'another-app' },
      { ...good, iss: undefined },
      { ...good, aud: undefined },
    ]) {
      const payload = Object.fromEntries(Object.entries(bad).filter(([, v]) => v !== undefined));
      await expect(strict.verify(signHs256(SECRET, payload))).rejects.toBeInstanceOf(
        InvalidTokenError,
      );
    }
  });
});

describe('AuthService remembering verified tokens', () => {
  afterEach(() => jest.useRealTimers());

  it('refuses a token with a bad signature although the good one was verified just before', async () => {
    const auth = hsService();
    const good = signHs256(SECRET, claims('alice'));
    await expect(auth.verify(good)).resolves.toMatchObject({ userId: 'alice' });
    expect(auth.verifiedBefore(good)).toMatchObject({ userId: 'alice' });
    const [h, p, sig] = good.split('.');
    const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    expect(auth.verifiedBefore(flipped)).toBeUndefined();
    await expect(auth.verify(flipped)).rejects.toBeInstanceOf(InvalidTokenError);
    const forged = signHs256('another-secret-entirely', claims('alice'));
    await expect(auth.verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(auth.verify(tamper(good))).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('stops honouring a remembered token once it expires', async () => {
    // Only Date is faked: jose reads the clock from it, and webcrypto's jobs must still run.
    jest.useFakeTimers({
      now: Date.now(),
      doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'setTimeout', 'setInterval'],
    });
    const auth = hsService();
    const token = signHs256(SECRET, claims('alice', { exp: Math.floor(Date.now() / 1000) + 30 }));
    await expect(auth.verify(token)).resolves.toMatchObject({ userId: 'alice' });
    jest.setSystemTime(Date.now() + 29_000);
    expect(auth.verifiedBefore(token)).toBeDefined();
    jest.setSystemTime(Date.now() + 10_000);
    expect(auth.verifiedBefore(token)).toBeUndefined();
    await expect(auth.verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('verifies a long-lived token again after VERIFIED_TOKEN_TTL_MS', async () => {
    jest.useFakeTimers({
      now: Date.now(),
      doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'setTimeout', 'setInterval'],
    });
    const auth = hsService();
    const token = signHs256(SECRET, claims('alice'));
    await auth.verify(token);
    jest.setSystemTime(Date.now() + VERIFIED_TOKEN_TTL_MS);
    expect(auth.verifiedBefore(token)).toBeUndefined();
  });
});

describe('AuthService with a JWKS (RS256/ES256)', () => {
  const rsa = generateSigningKey('RS256', 'rsa-1');
  const ec = generateSigningKey('ES256', 'ec-1');
  const ISSUER = 'https://id.example';
  const AUDIENCE = 'voice-slots';
  let jwks: JwksServer;
  let auth: AuthService;
  const good = (extra = {}) => claims('alice', { iss: ISSUER, aud: AUDIENCE, ...extra });

  beforeAll(async () => {
    jwks = await startJwksServer([rsa, ec]);
    auth = new AuthService({
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS_URL: jwks.url,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    } as AppConfig);
  });
  afterAll(() => jwks.close());

  it('accepts RS256 and ES256 tokens signed by a published key', async () => {
    await expect(auth.verify(signJwt(rsa, good()))).resolves.toMatchObject({ userId: 'alice' });
    await expect(auth.verify(signJwt(ec, good()))).resolves.toMatchObject({ userId: 'alice' });
  });

  it.each([
    [
      'signed by an unpublished key under a published kid',
      () => signJwt(generateSigningKey('RS256', 'rsa-1'), good()),
    ],
    ['with an unknown kid', () => signJwt(generateSigningKey('ES256', 'nope'), good())],
    ['from another issuer', () => signJwt(rsa, good({ iss: 'https://evil.example' }))],
    ['for another audience', () => signJwt(rsa, good({ aud: 'other' }))],
    ['expired', () => signJwt(ec, good({ exp: past() }))],
    ['with the shared secret (HS256)', () => signHs256(SECRET, good())],
    [
      'HMAC-signed with the public key (algorithm confusion)',
      () => signHs256(JSON.stringify(rsa.jwk), good(), { kid: 'rsa-1' }),
    ],
    ['unsigned (alg none)', () => unsigned(good())],
  ])('refuses a token %s', async (_label, token) => {
    await expect(auth.verify(token())).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('answers "unavailable", not "invalid", when the key set cannot be fetched', async () => {
    const down = new AuthService({
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS_URL: 'http://127.0.0.1:9/jwks.json',
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    } as AppConfig);
    await expect(down.verify(signJwt(rsa, good()))).rejects.toBeInstanceOf(AuthUnavailableError);
  });
});

function tamper(token: string): string {
  const [h, , s] = token.split('.');
  const payload = Buffer.from(JSON.stringify(claims('mallory', { scope: 'admin' }))).toString(
    'base64url',
  );
  return `${h}.${payload}.${s}`;
}
