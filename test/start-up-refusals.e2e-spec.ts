import { networkInterfaces } from 'node:os';
import { ApiClient } from './support/api';
import { runBuiltScript } from './support/cluster';
import { storedFiles } from './support/hostile';
import { freePort, TestWorld } from './support/service';
import { makeToken } from './support/token';

const DEV_JWT_SECRET = 'dev-only-insecure-secret-change-me';

/** This machine's addresses that are not loopback (where others could reach a listener). */
const externalAddresses = (): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && a.family === 'IPv4')
    .map((a) => a!.address);

describe('the published development secret', () => {
  const world = new TestWorld();
  afterAll(() => world.dispose(), 30_000);

  it('is refused at start on a non-loopback listener, in development too', async () => {
    const port = await freePort();
    const cases: Array<[string, Record<string, string>]> = [
      ['explicitly, on 0.0.0.0', { AUTH_JWT_SECRET: DEV_JWT_SECRET, HOST: '0.0.0.0' }],
      ['by default, on ::', { AUTH_JWT_SECRET: '', HOST: '::' }],
    ];
    const runs = await Promise.all(
      cases.map(([, extra]) =>
        runBuiltScript(
          'main.js',
          { ...world.env(), NODE_ENV: 'development', PORT: String(port), ...extra },
          60_000,
        ),
      ),
    );
    runs.forEach(({ code, output }, i) => {
      const label = cases[i][0];
      expect({ label, refused: code !== null && code !== 0 }).toEqual({ label, refused: true });
      expect(output).toMatch(/AUTH_JWT_SECRET: the published development secret is refused/);
      expect(output).not.toMatch(/voice-slots listening/);
    });
    // Nothing listens, so a forged admin token has nowhere to go.
    const forged = makeToken('mallory', 'admin', { secret: DEV_JWT_SECRET });
    await expect(
      fetch(`http://127.0.0.1:${port}/v1/providers`, {
        headers: { authorization: `Bearer ${forged}` },
      }),
    ).rejects.toThrow();
  }, 80_000);

  it('keeps `npm start` working, on 127.0.0.1 only', async () => {
    const service = await world.start({ AUTH_JWT_SECRET: '', LOG_LEVEL: 'error' });
    const devAdmin = makeToken('ops', 'admin', { secret: DEV_JWT_SECRET });
    const local = await fetch(`${service.url}/v1/providers`, {
      headers: { authorization: `Bearer ${devAdmin}` },
    });
    expect(local.status).toBe(200);
    const outside = externalAddresses();
    for (const address of outside)
      await expect(
        fetch(`http://${address}:${service.port}/v1/providers`, {
          headers: { authorization: `Bearer ${devAdmin}` },
          signal: AbortSignal.timeout(3_000),
        }),
      ).rejects.toThrow();
  }, 60_000);
});

describe('a production start', () => {
  const world = new TestWorld();
  afterAll(() => world.dispose(), 30_000);

  const base = () => ({ ...world.env(), NODE_ENV: 'production', PORT: '0' });

  it('is refused with a weak configuration, with a message naming the variable', async () => {
    const without = (name: string, env: Record<string, string>) => {
      const copy = { ...env };
      delete copy[name];
      return copy;
    };
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['no AUTH_JWT_SECRET', without('AUTH_JWT_SECRET', base()), /AUTH_JWT_SECRET/],
      ['the development secret', { ...base(), AUTH_JWT_SECRET: DEV_JWT_SECRET }, /AUTH_JWT_SECRET/],
      [
        'a JWKS without issuer or audience',
        { ...base(), AUTH_JWKS_URL: 'https://id.example/jwks.json' },
        /AUTH_ISSUER[\s\S]*AUTH_AUDIENCE/,
      ],
    ];
    // Side by side: each exits by itself once its configuration is read (loading takes seconds).
    const runs = await Promise.all(cases.map(([, env]) => runBuiltScript('main.js', env, 60_000)));
    runs.forEach(({ code, output }, i) => {
      const [label, , message] = cases[i];
      expect({ label, code: code === null || code === 0 ? code : 'non-zero' }).toEqual({
        label,
        code: 'non-zero',
      });
      expect(output).toMatch(message);
      expect(output).toMatch(/Invalid configuration/);
      expect(output).not.toMatch(/voice-slots listening/);
    });
  }, 80_000);

  it('does not turn the provider sandbox on by itself', async () => {
    const service = await world.start({ NODE_ENV: 'production', LOG_LEVEL: 'error' });
    const res = await new ApiClient(service.url, 'alice').upload({ provider: 'elevenlabs' });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('provider_unavailable');
    expect(storedFiles(world)).toEqual([]);
  }, 40_000);
});
