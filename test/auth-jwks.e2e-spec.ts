import {
  claims,
  generateSigningKey,
  signHs256,
  signJwt,
  startJwksServer,
  unsigned,
  type JwksServer,
} from './support/jws';
import { makeWav } from './support/wav';
import { ServiceProcess, TestWorld } from './support/service';
import { TEST_JWT_SECRET } from './support/token';

const ISSUER = 'https://id.example.com/';
const AUDIENCE = 'voice-slots';

/**
 * Tokens from an identity provider: the service reads the provider's keys from AUTH_JWKS_URL and
 * accepts RS256 and ES256 tokens with the configured issuer and audience, and nothing else (not even
 * tokens signed with its own HS256 secret).
 */
describe('tokens verified by JWKS', () => {
  const world = new TestWorld();
  const rsa = generateSigningKey('RS256', 'rsa-2026');
  const ec = generateSigningKey('ES256', 'ec-2026');
  let jwks: JwksServer;
  let service: ServiceProcess;

  beforeAll(async () => {
    jwks = await startJwksServer([rsa, ec]);
    service = await world.start({
      AUTH_JWKS_URL: jwks.url,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
      LOG_LEVEL: 'error',
    });
  }, 60_000);

  afterAll(async () => {
    await world.dispose();
    await jwks.close();
  }, 30_000);

  const good = (sub = 'alice', extra: Record<string, unknown> = {}) =>
    claims(sub, { iss: ISSUER, aud: AUDIENCE, ...extra });

  async function get(token: string, path = '/v1/voices') {
    const res = await fetch(`${service.url}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      body: (await res.json()) as { code?: string },
    };
  }

  it('accepts RS256 and ES256 tokens signed by a published key', async () => {
    expect((await get(signJwt(rsa, good()))).status).toBe(200);
    expect((await get(signJwt(ec, good()))).status).toBe(200);
    // An audience list that includes ours is fine too.
    expect((await get(signJwt(ec, good('alice', { aud: ['other', AUDIENCE] })))).status).toBe(200);
  });

  it('takes the user from sub and the rights from scope', async () => {
    const form = new FormData();
    form.set('name', 'Via IdP');
    form.set('provider', 'elevenlabs');
    form.set('file', new Blob([new Uint8Array(makeWav(2))]), 'v.wav');
    const upload = await fetch(`${service.url}/v1/voices`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${signJwt(rsa, good('idp-user'))}` },
    });
    expect(upload.status).toBe(202);
    const { id } = (await upload.json()) as { id: string };
    expect((await get(signJwt(ec, good('idp-user')), `/v1/voices/${id}`)).status).toBe(200);
    expect((await get(signJwt(ec, good('someone-else')), `/v1/voices/${id}`)).status).toBe(404);

    const readOnly = signJwt(rsa, good('idp-user', { scope: 'voices:read' }));
    const refused = await fetch(`${service.url}/v1/voices/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${readOnly}` },
    });
    expect(refused.status).toBe(403);
    expect((await get(signJwt(rsa, good('ops', { scope: 'admin' })), '/v1/providers')).status).toBe(
      200,
    );
  });

  it.each<[string, () => string]>([
    [
      'from another issuer',
      () => signJwt(rsa, good('alice', { iss: 'https://evil.example.com/' })),
    ],
    ['without an issuer', () => signJwt(rsa, good('alice', { iss: undefined }))],
    ['for another audience', () => signJwt(ec, good('alice', { aud: 'another-api' }))],
    ['without an audience', () => signJwt(ec, good('alice', { aud: undefined }))],
    ['expired', () => signJwt(rsa, good('alice', { exp: Math.floor(Date.now() / 1000) - 300 }))],
    ['without expiry', () => signJwt(rsa, good('alice', { exp: undefined }))],
    ['with an unknown kid', () => signJwt(generateSigningKey('RS256', 'stranger'), good())],
    [
      'signed by another key under a published kid',
      () => signJwt(generateSigningKey('ES256', 'ec-2026'), good()),
    ],
    ['signed with the service HS256 secret', () => signHs256(TEST_JWT_SECRET, good())],
    [
      'HMAC-signed with the published public key',
      () => signHs256(JSON.stringify(rsa.jwk), good(), { kid: 'rsa-2026' }),
    ],
    ['unsigned (alg none)', () => unsigned(good())],
    [
      'with a signature from another token',
      () => swapSignature(signJwt(rsa, good('mallory')), signJwt(rsa, good())),
    ],
    ['malformed', () => 'eyJhbGciOiJSUzI1NiJ9.e30'],
  ])('refuses a token %s with 401 problem+json', async (_label, token) => {
    const res = await get(token());
    expect(res.status).toBe(401);
    expect(res.type).toContain('application/problem+json');
    expect(res.body.code).toBe('unauthorized');
  });

  it('keeps verifying with the keys it has while the key server is down', async () => {
    await jwks.close();
    expect((await get(signJwt(rsa, good()))).status).toBe(200);
    expect((await get(signJwt(rsa, good('alice', { aud: 'x' })))).status).toBe(401);
  });
});

/** The payload of `victim` with the signature of `donor`. */
function swapSignature(victim: string, donor: string): string {
  const [h, p] = victim.split('.');
  return `${h}.${p}.${donor.split('.')[2]}`;
}
