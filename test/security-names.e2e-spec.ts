import { NASTY_STRINGS, storedFiles, subjectOf, voiceRows } from './support/hostile';
import { uploadForm } from './support/multipart';
import { makeToken } from './support/token';

import { describeHostile } from './support/hostile-suite';

describeHostile('hostile input: names, injection strings, framework errors and route case', (h) => {
  const { call, upload, wav, world } = h;

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
      expect((await h.alice.get(res.json.id)).name).toBe(name.normalize('NFC'));
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
      for (const token of [null, h.alice.token, makeToken('root', 'admin')]) {
        const res = await call('GET', path, { token });
        expect([token && subjectOf(token), res.status, res.json.code]).toEqual([
          token && subjectOf(token),
          404,
          'not_found',
        ]);
      }
    });
  });
});
