import fc from 'fast-check';
import { makeFlac, makeMp3, makeTruncatedWav, makeWavHeaderWithJunk } from './support/audio';
import { fuzzSeed, inParallel, mangleCase, NASTY_STRINGS } from './support/hostile';
import { multipart, uploadForm, type Part } from './support/multipart';
import { makeToken } from './support/token';
import { makeWav } from './support/wav';

import { describeHostile } from './support/hostile-suite';

describeHostile('hostile input: generated requests (fast-check)', (h) => {
  const { call, upload, accepted, owners, fiveHundreds, crossTenant } = h;

  describe('generated requests (fast-check)', () => {
    const users = ['fuzz-a', 'fuzz-b', 'fuzz-c'].map((u) => makeToken(u));
    const textArb = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 30 }),
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.constantFrom(...NASTY_STRINGS),
    );
    const fileArb = fc.oneof(
      fc.double({ min: 0.05, max: 3, noNaN: true }).map((s) => makeWav(s, 8000)),
      fc
        .tuple(
          fc.double({ min: 0.5, max: 3, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
        )
        .map(([s, k]) => makeTruncatedWav(s, s * k, 8000)),
      fc.nat({ max: 3000 }).map((n) => makeWavHeaderWithJunk(n)),
      fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
      fc.constant(makeMp3(1.2)),
      fc.constant(makeFlac(1.2)),
      fc.constant(Buffer.alloc(0)),
      // Bytes of a real file with a few of them flipped.
      fc.tuple(fc.nat({ max: 3000 }), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
        const b = makeWav(1.5, 8000);
        b[i % 100] ^= x;
        return b;
      }),
    );
    const partsArb: fc.Arbitrary<Part[]> = fc
      .record({
        name: fc.option(textArb, { nil: undefined }),
        provider: fc.option(fc.oneof(fc.constantFrom('elevenlabs', 'cartesia'), textArb), {
          nil: undefined,
        }),
        language: fc.option(fc.oneof(fc.constantFrom('en', 'pt-BR', 'de'), textArb), {
          nil: undefined,
        }),
        file: fc.option(fileArb, { nil: undefined, freq: 8 }),
        filename: textArb,
        type: fc.oneof(
          fc.constantFrom('audio/wav', 'audio/mpeg', 'application/octet-stream', 'text/html'),
          textArb,
        ),
        extra: fc.array(fc.tuple(textArb, textArb), { maxLength: 3 }),
      })
      .map((r) => {
        const parts: Part[] = [];
        const clean = (s: string) => s.replace(/[\r\n"]/g, '_');
        if (r.name !== undefined) parts.push({ name: 'name', value: r.name });
        if (r.provider !== undefined) parts.push({ name: 'provider', value: r.provider });
        if (r.language !== undefined) parts.push({ name: 'language', value: r.language });
        for (const [k, v] of r.extra) parts.push({ name: clean(k), value: v });
        if (r.file)
          parts.push({
            name: 'file',
            value: r.file,
            filename: clean(r.filename),
            contentType: clean(r.type),
          });
        return parts;
      });

    /** Every route of the h.service, with `{id}` where an id goes; its other letters may be case-flipped. */
    const TEMPLATES = [
      '/v1/voices',
      '/v1/voices/{id}',
      '/v1/voices/{id}/activate',
      '/v1/voices/{id}/{id}',
      '/v1/providers',
      '/v1/admin/voices',
      '/v1/admin/voices/{id}/retry',
      '/v1/admin/reconcile',
      '/admin/queues',
      '/admin/queues/api/queues',
      '/admin/queues/{id}',
      '/health/live',
      '/health/ready',
      '/metrics',
      '/docs',
      '/docs-json',
      '/{id}',
    ] as const;
    const UPLOADS = 500;
    const RAW_MULTIPART = 300;
    const ROUTES = 9_400;

    it(`answers ${UPLOADS + RAW_MULTIPART + ROUTES} generated requests on every route: no 5xx, problem documents, no other user's voice, mixed case routes nowhere`, async () => {
      const seed = fuzzSeed();
      process.stdout.write(`hostile sweep seed: ${seed} (rerun with FUZZ_SEED=${seed})\n`);
      const earlier = fiveHundreds.length;

      // Uploads: forms of every shape, real and fake audio.
      let uploads = 0;
      await fc.assert(
        fc.asyncProperty(partsArb, fc.constantFrom(...users), async (parts, token) => {
          uploads++;
          const res = await upload(parts, { token });
          expect([202, 400, 413, 415, 422]).toContain(res.status);
        }),
        { numRuns: UPLOADS, seed },
      );
      expect(uploads).toBe(UPLOADS);

      // Raw multipart: random boundaries, headers and bytes, cut anywhere.
      let raw = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.string({ maxLength: 80 }),
          fc.uint8Array({ maxLength: 3000 }),
          fc.nat(),
          fc.constantFrom(...users),
          async (boundary, bytes, cut, token) => {
            raw++;
            const { body } = multipart(uploadForm(Buffer.from(bytes)), { boundary: 'b' });
            const whole = Buffer.concat([Buffer.from(bytes), body]);
            const res = await call('POST', '/v1/voices', {
              token,
              headers: {
                'content-type': `multipart/form-data; boundary=${boundary.replace(/[\r\n]/g, '')}`,
              },
              body: whole.subarray(0, cut % (whole.length + 1)),
            });
            expect(res.status).toBeLessThan(500);
          },
        ),
        { numRuns: RAW_MULTIPART, seed: seed + 1 },
      );
      expect(raw).toBe(RAW_MULTIPART);

      // Every route with generated ids, queries, methods, headers, bodies and tokens.
      const admin = makeToken('root', 'admin');
      const tokenArb = fc.oneof(
        fc.constantFrom(...users, h.alice.token, h.bob.token, admin),
        fc.constantFrom(null, 'x', makeToken('alice', 'voices:read', { expiresIn: -60 })),
        fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x21-\x7e]/g, 'a') || 'a'),
      );
      const segmentArb = fc.oneof(
        fc.uuid(),
        fc.constantFrom(...accepted.values(), '00000000-0000-4000-8000-000000000000'),
        fc.constantFrom(...accepted.values()).map((id) => id.toUpperCase()),
        fc.string({ maxLength: 40 }).map(encodeURIComponent),
        fc.constantFrom('..', '%2e%2e', '%00', '%', '%E0%A4%A', 'index.html', 'api'),
      );
      const queryArb = fc
        .array(
          fc.tuple(
            fc.constantFrom(
              'status',
              'provider',
              'limit',
              'cursor',
              'waitSeconds',
              'x',
              '__proto__[a]',
              'limit[]',
            ),
            fc.oneof(
              fc.string({ maxLength: 30 }),
              fc.integer().map(String),
              fc.constantFrom(
                'queued',
                'ready',
                'failed',
                'elevenlabs',
                '1',
                '3',
                '31',
                '-1',
                'NaN',
              ),
            ),
          ),
          { maxLength: 4 },
        )
        .map((pairs) => pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&'));
      const headerText = fc.string({ maxLength: 40 }).map((v) => v.replace(/[^\x20-\x7e]/g, ''));
      const routeArb = fc.record({
        method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD'),
        template: fc.constantFrom(...TEMPLATES),
        // One request in four spells its route in another case.
        caseMask: fc.oneof(
          { arbitrary: fc.constant(null), weight: 3 },
          { arbitrary: fc.integer({ min: 1, max: 2 ** 31 - 1 }), weight: 1 },
        ),
        id: segmentArb,
        query: queryArb,
        token: tokenArb,
        contentType: fc.constantFrom(
          'application/json',
          'application/json; charset=utf-16',
          'text/plain',
          'multipart/form-data; boundary=x',
          'application/x-www-form-urlencoded',
        ),
        body: fc.option(fc.oneof(fc.json(), fc.string({ maxLength: 200 })), { nil: undefined }),
        idempotencyKey: fc.option(headerText, { nil: undefined }),
        requestId: fc.option(headerText, { nil: undefined }),
      });
      // One request in 20 is a voice's owner reading, activating or deleting it, so about half
      // the voices are deleted along the way (their samples must go).
      const owned = [...owners].map(([id, user]) => ({ id, token: makeToken(user) }));
      const ownedArb = fc.record({
        voice: fc.constantFrom(...owned),
        template: fc.constantFrom('/v1/voices/{id}', '/v1/voices/{id}/activate'),
        method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'DELETE'),
      });
      const requestArb = fc.oneof(
        { arbitrary: routeArb, weight: 19 },
        {
          arbitrary: fc.tuple(routeArb, ownedArb).map(([r, own]) => ({
            ...r,
            ...own,
            id: own.voice.id,
            token: own.voice.token,
            caseMask: null,
            query: '',
            body: undefined,
          })),
          weight: 1,
        },
      );
      const requests = fc.sample(requestArb, { numRuns: ROUTES, seed: seed + 2 });
      const violations: string[] = [];
      const figures = new Map<string, number>();
      let routes = 0;
      await inParallel(requests, 8, async (r) => {
        routes++;
        const template = r.caseMask === null ? r.template : mangleCase(r.template, r.caseMask);
        const path = template.replaceAll('{id}', r.id);
        const url = `${path}${r.query ? `?${r.query}` : ''}`;
        const headers: Record<string, string> = {};
        if (r.body !== undefined) headers['content-type'] = r.contentType;
        if (r.idempotencyKey !== undefined) headers['idempotency-key'] = r.idempotencyKey;
        if (r.requestId !== undefined) headers['x-request-id'] = r.requestId;
        try {
          const res = await call(r.method, url, { token: r.token, headers, body: r.body });
          const kind = `${r.template}${template === r.template ? '' : ' (mixed case)'}`;
          const key = `${kind}|${Math.floor(res.status / 100)}xx`;
          figures.set(key, (figures.get(key) ?? 0) + 1);
          // A route spelled in another case is no route, for anyone: no answer, no token check
          // (only what runs before routing may refuse it: a body parser, the CORS preflight).
          if (
            template !== r.template &&
            r.method !== 'OPTIONS' &&
            (res.status < 400 || res.status === 401 || res.status === 403)
          )
            violations.push(`${r.method} ${url} answered ${res.status}: a route in another case`);
        } catch (err) {
          violations.push(`${r.method} ${url}: ${String(err)}`);
        }
      });
      expect(routes).toBe(ROUTES);
      const table: Record<string, string[]> = {};
      for (const [key, n] of [...figures].sort()) {
        const [kind, status] = key.split('|');
        (table[kind] ??= []).push(`${status} ${n}`);
      }
      const lines = Object.entries(table).map(
        ([kind, counts]) => `  ${kind}: ${counts.join(', ')}`,
      );
      process.stdout.write(
        `hostile sweep, ${ROUTES} route requests by route and status class:\n${lines.join('\n')}\n`,
      );

      expect(violations).toEqual([]);
      expect(crossTenant).toEqual([]);
      expect(fiveHundreds.slice(earlier)).toEqual([]);
    }, 240_000);
  });
});
