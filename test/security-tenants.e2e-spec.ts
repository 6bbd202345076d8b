import { launchChromium } from './support/browser';
import { claims, signHs256, unsigned } from './support/jws';
import { uploadForm } from './support/multipart';
import { makeToken, TEST_JWT_SECRET } from './support/token';

import { ALLOWED_ORIGIN, describeHostile } from './support/hostile-suite';

describeHostile(
  "hostile input: tokens, other users' voices, headers, CORS and the API docs",
  (h) => {
    const { call, upload, wav, PRIVATE_NAME } = h;

    describe('tokens', () => {
      const past = () => Math.floor(Date.now() / 1000) - 600;
      it.each<[string, () => string | null]>([
        ['missing', () => null],
        ['expired', () => makeToken('alice', 'voices:read', { expiresIn: -600 })],
        ['unsigned (alg none)', () => unsigned(claims('alice'))],
        [
          'signed with another secret',
          () => makeToken('alice', 'voices:read', { secret: 'x'.repeat(32) }),
        ],
        [
          'with an edited payload',
          () => {
            const [head, , s] = h.alice.token.split('.');
            return `${head}.${Buffer.from(JSON.stringify(claims('bob', { scope: 'admin' }))).toString('base64url')}.${s}`;
          },
        ],
        ['without expiry', () => signHs256(TEST_JWT_SECRET, claims('alice', { exp: undefined }))],
        [
          'not valid yet',
          () => signHs256(TEST_JWT_SECRET, claims('alice', { nbf: past() + 7200 })),
        ],
        ['malformed', () => 'abc.def.ghi'],
        ['not a JWT at all', () => 'hello'],
        ['huge', () => signHs256(TEST_JWT_SECRET, claims('alice', { pad: 'x'.repeat(9000) }))],
      ])('answers a token %s with 401 on every route', async (_label, token) => {
        const t = token();
        for (const [method, path] of [
          ['GET', '/v1/voices'],
          ['GET', '/v1/voices/00000000-0000-4000-8000-000000000000'],
          ['POST', '/v1/voices'],
          ['POST', '/v1/voices/00000000-0000-4000-8000-000000000000/activate'],
          ['DELETE', '/v1/voices/00000000-0000-4000-8000-000000000000'],
          ['GET', '/v1/providers'],
        ]) {
          const res = await call(method, path, { token: t });
          expect({ route: `${method} ${path}`, status: res.status, code: res.json.code }).toEqual({
            route: `${method} ${path}`,
            status: 401,
            code: 'unauthorized',
          });
          expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        }
      });

      it('answers a bad Authorization scheme with 401', async () => {
        for (const value of [
          'Basic YWxpY2U6c2VjcmV0',
          'Bearer',
          `Bearer ${h.alice.token} extra`,
          'Token abc',
        ]) {
          const res = await call('GET', '/v1/voices', {
            token: null,
            headers: { authorization: value },
          });
          expect(res.status).toBe(401);
        }
      });

      it('requires a token and the right scope on every /v1 route of the API document', async () => {
        const doc = (await (await fetch(`${h.service.url}/docs-json`)).json()) as {
          paths: Record<string, Record<string, unknown>>;
        };
        const noScopes = makeToken('mallory', '');
        const routes = Object.entries(doc.paths)
          .filter(([p]) => p.startsWith('/v1/'))
          .flatMap(([p, ops]) => Object.keys(ops).map((m) => [m.toUpperCase(), p] as const));
        expect(routes.length).toBeGreaterThanOrEqual(5);
        for (const [method, template] of routes) {
          const path = template.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
          expect([method, path, (await call(method, path, { token: null })).status]).toEqual([
            method,
            path,
            401,
          ]);
          expect([method, path, (await call(method, path, { token: noScopes })).status]).toEqual([
            method,
            path,
            403,
          ]);
        }
      });

      it('keeps admin routes for admins', async () => {
        const user = await call('GET', '/v1/providers');
        expect({ status: user.status, code: user.json.code }).toEqual({
          status: 403,
          code: 'forbidden',
        });
        const admin = await call('GET', '/v1/providers', { token: makeToken('root', 'admin') });
        expect(admin.status).toBe(200);
      });
    });

    describe("another user's voices", () => {
      let voiceId: string;

      beforeAll(async () => {
        const res = await upload(uploadForm(wav(), { name: PRIVATE_NAME }));
        expect(res.status).toBe(202);
        voiceId = res.json.id;
        await h.alice.waitFor(voiceId, ['ready']);
      });

      it('answers 404 to every route and changes nothing', async () => {
        const before = await h.alice.get(voiceId);
        const bobToken = h.bob.token;
        const admin = makeToken('root', 'admin voices:read voices:write');
        for (const token of [bobToken, admin]) {
          for (const [method, path] of [
            ['GET', `/v1/voices/${voiceId}`],
            ['DELETE', `/v1/voices/${voiceId}`],
            ['POST', `/v1/voices/${voiceId}/activate`],
            ['POST', `/v1/voices/${voiceId}/activate?waitSeconds=1`],
          ]) {
            const res = await call(method, path, { token });
            expect([method, res.status, res.json.code]).toEqual([method, 404, 'voice_not_found']);
          }
        }
        // Not deleted, not activated (no lease or use recorded), not requeued.
        const after = await h.alice.get(voiceId);
        expect(after).toMatchObject({
          status: 'ready',
          lastUsedAt: before.lastUsedAt,
          leaseExpiresAt: before.leaseExpiresAt,
          updatedAt: before.updatedAt,
        });
      });

      it('never lists it, whatever the filters or cursor', async () => {
        // A second voice of alice's, so her first page of one has a cursor to try as bob.
        expect((await upload(uploadForm(wav(), { name: 'Second' }))).status).toBe(202);
        const aliceList = await call('GET', '/v1/voices?limit=1');
        const cursor = aliceList.json.nextCursor as string;
        expect(cursor).toEqual(expect.any(String));
        for (const query of [
          '',
          '?limit=100',
          '?provider=elevenlabs',
          '?status=queued',
          '?status=ready',
          `?cursor=${cursor}`,
        ]) {
          const res = await call('GET', `/v1/voices${query}`, { token: h.bob.token });
          expect(res.status).toBe(200);
          expect(res.json.items.map((v: { id: string }) => v.id)).not.toContain(voiceId);
        }
      });
    });

    describe('headers, CORS and the API docs', () => {
      it('sends security headers, and no X-Powered-By', async () => {
        // JSON answers (errors included) may not be loaded, framed or sniffed by anything.
        for (const path of ['/v1/voices', '/v1/voices/not-a-uuid', '/health/live']) {
          const res = await fetch(`${h.service.url}${path}`);
          expect(res.headers.get('x-content-type-options')).toBe('nosniff');
          expect(res.headers.get('x-frame-options')).toBe('DENY');
          expect(res.headers.get('content-security-policy')).toBe(
            "default-src 'none';frame-ancestors 'none'",
          );
          expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
          expect(res.headers.get('x-powered-by')).toBeNull();
        }
        // Pages get helmet's full set.
        for (const path of ['/docs', '/nope']) {
          const res = await fetch(`${h.service.url}${path}`);
          expect(res.headers.get('x-content-type-options')).toBe('nosniff');
          expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
          expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
          expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
          expect(res.headers.get('x-powered-by')).toBeNull();
        }
      });

      it('allows the configured origin only', async () => {
        const preflight = (origin: string) =>
          fetch(`${h.service.url}/v1/voices`, {
            method: 'OPTIONS',
            headers: {
              origin,
              'access-control-request-method': 'POST',
              'access-control-request-headers': 'authorization',
            },
          });
        const good = await preflight(ALLOWED_ORIGIN);
        expect(good.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
        expect(good.headers.get('access-control-allow-headers')?.toLowerCase()).toContain(
          'authorization',
        );
        const evil = await preflight('https://evil.example.com');
        expect(evil.headers.get('access-control-allow-origin')).toBeNull();
      });

      it('serves Swagger UI within its Content-Security-Policy', async () => {
        const res = await fetch(`${h.service.url}/docs`);
        expect(res.status).toBe(200);
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toContain("script-src 'self'");
        expect(csp).not.toContain('upgrade-insecure-requests');
        const html = await res.text();
        // Every script is a same-origin file (no inline code the CSP would block), and each loads.
        const inline = [
          ...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g),
        ].filter((m) => m[1].trim());
        expect(inline).toEqual([]);
        const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]);
        expect(assets.length).toBeGreaterThan(2);
        for (const a of assets) {
          expect([a, (await fetch(new URL(a, `${h.service.url}/docs`))).status]).toEqual([a, 200]);
        }
      });

      it('renders Swagger UI in a browser without CSP violations', async () => {
        const browser = await launchChromium();
        try {
          const page = await browser.newPage();
          const problems: string[] = [];
          page.on('console', (m) => {
            if (m.type() === 'error') problems.push(m.text());
          });
          page.on('pageerror', (e) => problems.push(String(e)));
          await page.goto(`${h.service.url}/docs`, { waitUntil: 'networkidle' });
          await page.waitForSelector('.opblock', { timeout: 15_000 });
          expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(5);
          expect(problems).toEqual([]);
        } finally {
          await browser.close();
        }
      }, 40_000);
    });
  },
);
