import fc from 'fast-check';
import { makeFlac, makeMp3, makeTruncatedWav, makeWavHeaderWithJunk } from './support/audio';
import { ApiClient } from './support/api';
import { launchChromium } from './support/browser';
import {
  foreignIds,
  fuzzSeed,
  inParallel,
  mangleCase,
  NASTY_STRINGS,
  problemShape,
  storedFiles,
  subjectOf,
  voiceRows,
} from './support/hostile';
import { claims, signHs256, unsigned } from './support/jws';
import {
  multipart,
  send,
  sendAndHangUp,
  uploadForm,
  type Part,
  type RawAnswer,
} from './support/multipart';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken, TEST_JWT_SECRET } from './support/token';
import { makeWav } from './support/wav';

const MAX_BYTES = 1_000_000;
const ALLOWED_ORIGIN = 'https://app.example.com';

/**
 * The service against hostile clients, over HTTP: malformed multipart, audio that lies, names and
 * injection strings, wrong types, bad tokens, other users' voices, and a few thousand generated
 * requests. Nothing may answer 5xx, every error is a problem document, the service keeps serving,
 * and a rejected request leaves neither a row nor a file. Rate limits are set out of reach here;
 * rate-limiter.e2e-spec.ts and rate-limits.e2e-spec.ts test them.
 */
describe('hostile input', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  let alice: ApiClient;
  let bob: ApiClient;
  /** Every voice the service accepted (202) in this suite: the only rows allowed to exist. */
  const accepted = new Set<string>();
  /** Who uploaded each accepted voice: no one else may ever be shown its id. */
  const owners = new Map<string, string>();
  const fiveHundreds: string[] = [];
  /** Answers that showed a user something of another user's (ids, or alice's private name). */
  const crossTenant: string[] = [];
  /** /v1 answers that a browser or proxy would be allowed to cache. */
  const cacheable: string[] = [];
  const PRIVATE_NAME = `Private ${Math.random().toString(36).slice(2)}`;
  /** Routes where an admin sees every user's voices. */
  const ADMIN_VIEWS = /^\/(v1\/admin\/|admin\/queues)/;

  beforeAll(async () => {
    service = await world.start({
      MAX_SAMPLE_BYTES: String(MAX_BYTES),
      MIN_SAMPLE_SECONDS: '1',
      MAX_SAMPLE_SECONDS: '60',
      USER_MAX_PENDING: '100000',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '1000000',
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '1000000',
      CORS_ORIGINS: ALLOWED_ORIGIN,
      // Room at the in-process provider sandbox for every voice accepted here.
      SANDBOX_VOICE_LIMIT: '100000',
      CARTESIA_SLOT_LIMIT: '100000',
      LOG_LEVEL: 'error',
    });
    alice = new ApiClient(service.url, 'alice');
    bob = new ApiClient(service.url, 'bob');
  }, 60_000);

  afterAll(async () => {
    await world.dispose();
  }, 30_000);

  /** Sends a request and checks what every answer must satisfy, whatever was sent. */
  async function call(
    method: string,
    path: string,
    opts: {
      token?: string | null;
      headers?: Record<string, string>;
      body?: Buffer | string;
      close?: boolean;
    } = {},
  ): Promise<RawAnswer> {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? alice.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await send(`${service.url}${path}`, {
      method,
      headers,
      body: opts.body,
      close: opts.close,
    });
    if (res.status >= 500) fiveHundreds.push(`${method} ${path} -> ${res.status} ${res.text}`);
    if (res.status >= 400) {
      const contentType = res.headers['content-type'] as string;
      // A HEAD answer has the headers of the GET answer and no body.
      const issues =
        method !== 'HEAD'
          ? problemShape(res.status, contentType, res.json)
          : String(contentType).startsWith('application/problem+json')
            ? []
            : [`content-type ${contentType}`];
      if (issues.length) throw new Error(`${method} ${path} ${res.status}: ${issues.join(', ')}`);
    }
    // The path as sent: the URL parser resolves dot segments, `%2e%2e` included.
    const sent = new URL(`${service.url}${path}`).pathname;
    if (/^\/v1\//i.test(sent) && res.headers['cache-control'] !== 'no-store')
      cacheable.push(`${method} ${path} -> ${res.status}`);
    const user = subjectOf(token);
    if (method === 'POST' && /^\/v1\/voices(\?|$)/.test(path) && res.status === 202 && user) {
      accepted.add(res.json.id);
      owners.set(res.json.id, user);
    }
    if (res.status < 300 && user && !ADMIN_VIEWS.test(path)) {
      const foreign = foreignIds(res.text, user, owners);
      if (user !== 'alice' && res.text.includes(PRIVATE_NAME)) foreign.push(PRIVATE_NAME);
      if (foreign.length)
        crossTenant.push(
          `${user}: ${method} ${path} -> ${res.status} showed ${foreign.join(', ')}`,
        );
    }
    return res;
  }

  async function upload(
    parts: Part[],
    opts: { token?: string | null; boundary?: string; terminate?: boolean } = {},
  ): Promise<RawAnswer> {
    const { body, contentType } = multipart(parts, opts);
    return call('POST', '/v1/voices', {
      token: opts.token,
      headers: { 'content-type': contentType },
      body,
    });
  }

  const wav = () => makeWav(1.5);

  describe('malformed multipart', () => {
    it.each<[string, () => { body: Buffer | string; contentType: string }, number, string]>([
      [
        'without a boundary',
        () => ({ body: multipart(uploadForm(wav())).body, contentType: 'multipart/form-data' }),
        400,
        'malformed_multipart',
      ],
      [
        'with a boundary the body does not use',
        () => ({
          body: multipart(uploadForm(wav()), { boundary: 'other' }).body,
          contentType: multipart([]).contentType,
        }),
        400,
        'malformed_multipart',
      ],
      [
        'cut off in the middle of the file',
        () => {
          const { body, contentType } = multipart(uploadForm(wav()), { terminate: false });
          return { body: body.subarray(0, body.length - 20_000), contentType };
        },
        400,
        'malformed_multipart',
      ],
      [
        'with a part header and nothing after',
        () => ({
          body: '--x-voice-slots-test-boundary\r\nContent-Disposition: form-data; name="file"',
          contentType: multipart([]).contentType,
        }),
        400,
        'malformed_multipart',
      ],
      [
        'of random bytes',
        () => ({
          body: Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
          contentType: multipart([]).contentType,
        }),
        400,
        'malformed_multipart',
      ],
      [
        'sent as JSON',
        () => ({ body: '{"name":"x","provider":"elevenlabs"}', contentType: 'application/json' }),
        415,
        'unsupported_media_type',
      ],
      [
        'sent as a urlencoded form',
        () => ({
          body: 'name=x&provider=elevenlabs',
          contentType: 'application/x-www-form-urlencoded',
        }),
        415,
        'unsupported_media_type',
      ],
    ])('refuses a body %s', async (_label, make, status, code) => {
      const { body, contentType } = make();
      const res = await call('POST', '/v1/voices', {
        headers: { 'content-type': contentType },
        body,
      });
      expect({ status: res.status, code: res.json.code }).toEqual({ status, code });
    });

    it.each<[string, Part[], string]>([
      ['no file', uploadForm(wav()).slice(0, 2), 'file'],
      [
        'two files',
        [...uploadForm(wav()), { name: 'file', value: wav(), filename: 'b.wav' }],
        'one file',
      ],
      [
        'the file as a plain field',
        [...uploadForm(wav()).slice(0, 2), { name: 'file', value: 'RIFF' }],
        'file',
      ],
      [
        'the name as a file',
        [{ name: 'name', value: 'x', filename: 'n.txt' }, ...uploadForm(wav()).slice(1)],
        'one file',
      ],
      ['a huge field', uploadForm(wav(), { name: 'n'.repeat(500_000) }), 'too long'],
      [
        'a field twice',
        [...uploadForm(wav()), { name: 'provider', value: 'cartesia' }],
        'more than once',
      ],
      [
        'too many parts',
        [
          ...Array.from({ length: 30 }, (_, i) => ({ name: `x${i}`, value: 'y' })),
          ...uploadForm(wav()),
        ],
        'too many',
      ],
    ])('refuses a form with %s (validation_failed)', async (_label, parts, detail) => {
      const res = await upload(parts);
      expect(res.status).toBe(422);
      expect(res.json.code).toBe('validation_failed');
      expect(res.json.detail).toContain(detail);
    });

    it('keeps neither file nor row when the client hangs up mid-upload', async () => {
      const { body, contentType } = multipart(uploadForm(makeWav(20)));
      const before = storedFiles(world).length;
      await sendAndHangUp(
        service.url,
        {
          authorization: `Bearer ${alice.token}`,
          'content-type': contentType,
          'content-length': String(body.length),
        },
        body.subarray(0, 200_000),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(storedFiles(world).length).toBe(before);
      expect(storedFiles(world).filter((f) => f.endsWith('.part'))).toEqual([]);
      expect((await fetch(`${service.url}/health/live`)).status).toBe(200);
    });
  });

  describe('audio that is not what it claims', () => {
    it.each<[string, () => Buffer, string, string, number, string]>([
      [
        'text named .wav',
        () => Buffer.from('hello '.repeat(200)),
        'x.wav',
        'audio/wav',
        415,
        'unsupported_media_type',
      ],
      [
        'a PNG named .mp3',
        () =>
          Buffer.concat([
            Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'),
            Buffer.alloc(500),
          ]),
        'x.mp3',
        'audio/mpeg',
        415,
        'unsupported_media_type',
      ],
      [
        'a WAV header followed by junk',
        () => makeWavHeaderWithJunk(8000),
        'x.wav',
        'audio/wav',
        422,
        'sample_unreadable',
      ],
      [
        'a WAV header alone',
        () => makeWav(2).subarray(0, 44),
        'x.wav',
        'audio/wav',
        422,
        'sample_unreadable',
      ],
      [
        'a WAV truncated below the minimum',
        () => makeTruncatedWav(5, 0.4),
        'x.wav',
        'audio/wav',
        422,
        'sample_too_short',
      ],
      [
        'a WAV claiming zero channels',
        () => {
          const b = makeWav(2);
          b.writeUInt16LE(0, 22);
          return b;
        },
        'x.wav',
        'audio/wav',
        422,
        'sample_unreadable',
      ],
      ['a sample too short', () => makeWav(0.5), 'x.wav', 'audio/wav', 422, 'sample_too_short'],
      ['a sample too long', () => makeWav(61, 4000), 'x.wav', 'audio/wav', 422, 'sample_too_long'],
      [
        'a file over the size cap',
        () => Buffer.alloc(MAX_BYTES + 1, 1),
        'x.wav',
        'audio/wav',
        413,
        'sample_too_large',
      ],
      ['an empty file', () => Buffer.alloc(0), 'x.wav', 'audio/wav', 422, 'validation_failed'],
    ])('refuses %s', async (_label, file, filename, type, status, code) => {
      const res = await upload(uploadForm(file(), {}, filename, type));
      expect({ status: res.status, code: res.json.code }).toEqual({ status, code });
    });

    it('refuses a declared Content-Length over the cap without reading the body', async () => {
      const res = await call('POST', '/v1/voices', {
        headers: {
          'content-type': multipart([]).contentType,
          'content-length': String(MAX_BYTES * 100),
        },
        close: true,
      }).catch(() => null);
      // Node may close the socket once answered; what matters is no file, no row, no crash.
      if (res) expect(res.status).toBe(413);
    });

    it('accepts real audio of any accepted format, whatever the client calls it', async () => {
      for (const [file, format] of [
        [makeWav(2), 'wav'],
        [makeMp3(2), 'mp3'],
        [makeFlac(2), 'flac'],
        [makeTruncatedWav(5, 1.5), 'wav'],
      ] as const) {
        const res = await upload(uploadForm(file, {}, 'notes.pdf', 'application/pdf'));
        expect(res.status).toBe(202);
        const seen = await alice.waitFor(res.json.id, ['queued', 'allocating', 'ready']);
        expect(seen.sample?.format).toBe(format);
      }
    });
  });

  describe('names and injection strings', () => {
    it.each([
      'Grand-mère 👵🏽',
      '日本語の声',
      '👨‍👩‍👧‍👦 family',
      "Robert'); DROP TABLE voices;--",
      '<b>bold</b>',
    ])('keeps %j verbatim as a name', async (name) => {
      const res = await upload(uploadForm(wav(), { name }));
      expect(res.status).toBe(202);
      expect((await alice.get(res.json.id)).name).toBe(name.normalize('NFC'));
    });

    it.each([
      ['too long', 'a'.repeat(101)],
      ['blank', '   '],
      ['with a NUL', 'a\u0000b'],
      ['with a newline', 'a\nb'],
      ['with a bidi override', 'abc\u202egnp.exe'],
      ['with a zero-width space', 'a\u200bb'],
    ])('refuses a name %s', async (_label, name) => {
      const res = await upload(uploadForm(wav(), { name }));
      expect(res.status).toBe(422);
      expect(res.json.code).toBe('validation_failed');
    });

    it('treats every nasty string as data in every field, never as code or a path', async () => {
      for (const s of NASTY_STRINGS) {
        for (const fields of [{ name: s }, { provider: s }, { language: s }] as Record<
          string,
          string
        >[]) {
          const res = await upload(uploadForm(wav(), fields, s));
          expect([202, 400, 422]).toContain(res.status);
        }
      }
      // The table is still there, and the traversal names wrote nothing outside the sample folder.
      expect((await voiceRows(world)).length).toBeGreaterThan(0);
      for (const f of storedFiles(world)) expect(f).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('never uses the client file name as a path', async () => {
      const res = await upload([
        ...uploadForm(wav()).slice(0, 2),
        {
          name: 'file',
          value: wav(),
          raw: `Content-Disposition: form-data; name="file"; filename*=utf-8''..%2F..%2F..%2Fetc%2Fpasswd%00.wav`,
        },
      ]);
      expect(res.status).toBe(202);
      expect(storedFiles(world)).toContain(res.json.id);
      expect(
        await world.db(
          async (c) =>
            (
              await c.query<{ sample_key: string }>('SELECT sample_key FROM voices WHERE id = $1', [
                res.json.id,
              ])
            ).rows[0],
        ),
      ).toEqual({ sample_key: `${res.json.id.slice(0, 2)}/${res.json.id}` });
    });

    it.each([
      '/v1/voices/1%27%20OR%201%3D1--',
      '/v1/voices/..%2F..%2Fetc%2Fpasswd',
      '/v1/voices/%00',
      '/v1/voices/%E0%A4%A',
      '/v1/voices/00000000-0000-0000-0000-000000000000%27',
      '/v1/voices?status=%27%3B%20DROP%20TABLE%20voices%3B--',
      '/v1/voices?provider[]=elevenlabs',
      '/v1/voices?limit=1e309',
      '/v1/voices?limit=-1',
      '/v1/voices?limit=1&limit=2',
      '/v1/voices?cursor=%27%20OR%201%3D1',
      `/v1/voices?cursor=${Buffer.from('["2020-01-01T00:00:00Z","------------------------------------"]').toString('base64url')}`,
      `/v1/voices?cursor=${Buffer.from('["-200000-01-01T00:00:00Z","00000000-0000-4000-8000-000000000000"]').toString('base64url')}`,
      `/v1/voices?cursor=${Buffer.from('{"__proto__":{"x":1}}').toString('base64url')}`,
      '/v1/voices?__proto__[admin]=1',
      '/v1/voices?unknown=1',
    ])('answers %s with a 4xx problem', async (path) => {
      const res = await call('GET', path);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    });

    it.each([
      'waitSeconds=-1',
      'waitSeconds=31',
      'waitSeconds=abc',
      'waitSeconds=1.5',
      'waitSeconds[]=1',
    ])('refuses activate?%s with validation_failed', async (query) => {
      const res = await call(
        'POST',
        `/v1/voices/00000000-0000-4000-8000-000000000000/activate?${query}`,
      );
      expect(res.status).toBe(422);
    });
  });

  describe('the error shape of the framework itself', () => {
    it('answers an unknown route with 404 not_found', async () => {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['GET', '/v2/voices'],
        ['PUT', '/v1/voices'],
        ['PATCH', '/v1/voices/00000000-0000-4000-8000-000000000000'],
        ['GET', '/../../etc/passwd'],
      ]) {
        const res = await call(method, path);
        expect({ status: res.status, code: res.json.code }).toEqual({
          status: 404,
          code: 'not_found',
        });
        expect(res.json.detail).not.toContain('passwd');
      }
    });

    it("answers the queue board's own errors as problem documents", async () => {
      const admin = makeToken('root', 'admin');
      const badQuery = await call('GET', '/admin/queues/api/queues?status=bogus', { token: admin });
      expect([badQuery.status, badQuery.json.code]).toEqual([400, 'bad_request']);
      const noQueue = await call('GET', '/admin/queues/api/queues/nope/x', { token: admin });
      expect([noQueue.status, noQueue.json.code]).toEqual([404, 'not_found']);
      // The board's own detail stays, for its UI.
      expect(noQueue.json.error).toEqual({ key: 'ERRORS.QUEUE_NOT_FOUND' });
    });

    it('answers malformed JSON and an oversized JSON body with their codes', async () => {
      const path = '/v1/voices/00000000-0000-4000-8000-000000000000/activate';
      const headers = { 'content-type': 'application/json' };
      const malformed = await call('POST', path, { headers, body: '{"waitSeconds": ' });
      expect(malformed.json.code).toBe('malformed_json');
      const huge = await call('POST', path, {
        headers,
        body: JSON.stringify({ x: 'y'.repeat(200_000) }),
      });
      expect({ status: huge.status, code: huge.json.code }).toEqual({
        status: 413,
        code: 'payload_too_large',
      });
      const charset = await call('POST', path, {
        headers: { 'content-type': 'application/json; charset=iso-8859-1' },
        body: '{}',
      });
      expect(charset.status).toBe(415);
    });
  });

  describe('routes spelled in another case', () => {
    it.each([
      '/ADMIN/queues',
      '/Admin/Queues',
      '/admin/QUEUES/api/queues',
      '/V1/providers',
      '/v1/Providers',
      '/V1/admin/voices?status=failed',
      '/v1/ADMIN/voices',
      '/V1/voices',
      '/v1/Voices/00000000-0000-4000-8000-000000000000',
      '/Docs',
      '/DOCS-JSON',
      '/Metrics',
      '/HEALTH/live',
    ])('%s is no route, with any token or none (404 not_found)', async (path) => {
      for (const token of [null, alice.token, makeToken('root', 'admin')]) {
        const res = await call('GET', path, { token });
        expect([token && subjectOf(token), res.status, res.json.code]).toEqual([
          token && subjectOf(token),
          404,
          'not_found',
        ]);
      }
    });
  });

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
          const [h, , s] = alice.token.split('.');
          return `${h}.${Buffer.from(JSON.stringify(claims('bob', { scope: 'admin' }))).toString('base64url')}.${s}`;
        },
      ],
      ['without expiry', () => signHs256(TEST_JWT_SECRET, claims('alice', { exp: undefined }))],
      ['not valid yet', () => signHs256(TEST_JWT_SECRET, claims('alice', { nbf: past() + 7200 }))],
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
        `Bearer ${alice.token} extra`,
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
      const doc = (await (await fetch(`${service.url}/docs-json`)).json()) as {
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
      await alice.waitFor(voiceId, ['ready']);
    });

    it('answers 404 to every route and changes nothing', async () => {
      const before = await alice.get(voiceId);
      const bobToken = bob.token;
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
      const after = await alice.get(voiceId);
      expect(after).toMatchObject({
        status: 'ready',
        lastUsedAt: before.lastUsedAt,
        leaseExpiresAt: before.leaseExpiresAt,
        updatedAt: before.updatedAt,
      });
    });

    it('never lists it, whatever the filters or cursor', async () => {
      const aliceList = await call('GET', '/v1/voices?limit=1');
      const cursor = aliceList.json.nextCursor as string;
      for (const query of [
        '',
        '?limit=100',
        '?provider=elevenlabs',
        '?status=queued',
        '?status=ready',
        `?cursor=${cursor}`,
      ]) {
        const res = await call('GET', `/v1/voices${query}`, { token: bob.token });
        expect(res.status).toBe(200);
        expect(res.json.items.map((v: { id: string }) => v.id)).not.toContain(voiceId);
      }
    });
  });

  describe('headers, CORS and the API docs', () => {
    it('sends security headers, and no X-Powered-By', async () => {
      // JSON answers (errors included) may not be loaded, framed or sniffed by anything.
      for (const path of ['/v1/voices', '/v1/voices/not-a-uuid', '/health/live']) {
        const res = await fetch(`${service.url}${path}`);
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
        const res = await fetch(`${service.url}${path}`);
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
        expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
        expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
        expect(res.headers.get('x-powered-by')).toBeNull();
      }
    });

    it('allows the configured origin only', async () => {
      const preflight = (origin: string) =>
        fetch(`${service.url}/v1/voices`, {
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
      const res = await fetch(`${service.url}/docs`);
      expect(res.status).toBe(200);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('upgrade-insecure-requests');
      const html = await res.text();
      // Every script is a same-origin file (no inline code the CSP would block), and each loads.
      const inline = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].filter(
        (m) => m[1].trim(),
      );
      expect(inline).toEqual([]);
      const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]);
      expect(assets.length).toBeGreaterThan(2);
      for (const a of assets) {
        expect([a, (await fetch(new URL(a, `${service.url}/docs`))).status]).toEqual([a, 200]);
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
        await page.goto(`${service.url}/docs`, { waitUntil: 'networkidle' });
        await page.waitForSelector('.opblock', { timeout: 15_000 });
        expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(5);
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    }, 40_000);
  });

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

    /** Every route of the service, with `{id}` where an id goes; its other letters may be case-flipped. */
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
        fc.constantFrom(...users, alice.token, bob.token, admin),
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

  describe('afterwards', () => {
    it('still serves good requests', async () => {
      expect((await fetch(`${service.url}/health/ready`)).status).toBe(200);
      const res = await upload(uploadForm(makeWav(2), { name: 'After the storm' }));
      expect(res.status).toBe(202);
      const voice = await alice.waitFor(res.json.id, ['queued', 'allocating', 'ready']);
      expect(voice.sample?.durationMs).toBe(2000);
      expect((await call('GET', '/v1/voices?limit=5')).status).toBe(200);
    });

    it('kept a row for every accepted upload, a file for every live voice, and nothing else', async () => {
      const rows = await voiceRows(world);
      expect(new Set(rows.map((r) => r.id))).toEqual(accepted);
      const live = new Set(rows.filter((r) => r.status !== 'deleted').map((r) => r.id));
      // The sweep deleted some voices: their samples go with their clean-up jobs, soon after.
      let files = storedFiles(world);
      for (let i = 0; i < 300 && files.some((f) => !live.has(f)); i++) {
        await new Promise((r) => setTimeout(r, 100));
        files = storedFiles(world);
      }
      expect(files.filter((f) => !live.has(f))).toEqual([]);
      expect([...live].filter((id) => !files.includes(id))).toEqual([]);
      process.stdout.write(
        `after the sweep: ${rows.length} voices accepted, ${rows.length - live.size} deleted, ${files.length} sample files (one per live voice)\n`,
      );
    });

    it('answered no request above with a 5xx, and is still the same process', async () => {
      expect(fiveHundreds).toEqual([]);
      expect(cacheable).toEqual([]);
      expect(service.output).not.toMatch(/Unhandled|uncaught|FATAL/i);
      expect((await fetch(`${service.url}/health/live`)).status).toBe(200);
    });
  });
});
