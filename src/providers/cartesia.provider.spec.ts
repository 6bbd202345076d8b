import { randomBytes } from 'node:crypto';
import { CartesiaProvider } from './cartesia.provider';
import {
  memorySample,
  parseMultipart,
  startStubServer,
  type StubServer,
} from './testing/stub-server';
import { caught } from './testing/caught';

const KEY = 'sk_car_secret_456';
const VERSION = '2025-11-04';

describe('CartesiaProvider against a stub', () => {
  let stub: StubServer;
  let provider: CartesiaProvider;
  const audio = randomBytes(150_000);
  const request = (language?: string) => ({
    name: 'Bob',
    idempotencyKey: 'key-789',
    language,
    sample: memorySample(audio, { filename: 'bob.mp3', contentType: 'audio/mpeg' }),
  });
  const voice = (id: string, description = '') => ({
    id,
    user_id: 'u',
    name: id.toUpperCase(),
    description,
    language: 'en',
    is_public: false,
    created_at: '2025-01-02T03:04:05Z',
  });

  beforeEach(async () => {
    stub = await startStubServer();
    provider = new CartesiaProvider({
      baseUrl: stub.url,
      apiKey: KEY,
      version: VERSION,
      timeoutMs: 2000,
    });
  });
  afterEach(() => stub.close());

  describe('createVoice', () => {
    it('posts clip, name, description and language with auth and version headers', async () => {
      stub.reply({ status: 200, json: voice('c1', 'vs_key:key-789') });
      const req = request();
      await expect(provider.createVoice(req)).resolves.toEqual({ remoteVoiceId: 'c1' });
      expect(stub.requests).toHaveLength(1);
      const r = stub.requests[0];
      expect(r.method).toBe('POST');
      expect(r.path).toBe('/voices/clone');
      expect(r.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(r.headers['cartesia-version']).toBe(VERSION);
      const parts = await parseMultipart(r);
      const byName = Object.fromEntries(parts.map((p) => [p.name, p]));
      expect(Object.keys(byName).sort()).toEqual(['clip', 'description', 'language', 'name']);
      expect(byName.clip.filename).toBe('bob.mp3');
      expect(byName.clip.mimeType).toBe('audio/mpeg');
      expect(byName.clip.data!.equals(audio)).toBe(true);
      expect(byName.name.value).toBe('Bob');
      expect(byName.description.value).toBe('vs_key:key-789');
      expect(byName.language.value).toBe('en');
      expect(req.sample.opened).toBe(1);
    });

    it('sends the requested language', async () => {
      stub.reply({ status: 200, json: voice('c2') });
      await provider.createVoice(request('fr'));
      const parts = await parseMultipart(stub.requests[0]);
      expect(parts.find((p) => p.name === 'language')?.value).toBe('fr');
    });

    it('makes exactly one request on a 500 and calls it retryable', async () => {
      stub.reply({ status: 500, text: 'Internal Server Error' });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        provider: 'cartesia',
        errorClass: 'retryable',
        code: 'http_500',
      });
      expect(stub.requests).toHaveLength(1);
    });

    it('classifies 429 concurrency_limited as retryable with Retry-After', async () => {
      stub.reply({
        status: 429,
        headers: { 'retry-after': '2' },
        json: {
          error_code: 'concurrency_limited',
          title: 'Too Many Requests',
          message: 'later',
          request_id: 'r',
        },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        errorClass: 'retryable',
        code: 'concurrency_limited',
        httpStatus: 429,
        retryAfterMs: 2000,
      });
    });

    it('classifies a plain-text 429 without Retry-After as retryable', async () => {
      stub.reply({ status: 429, text: 'Too many requests' });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        errorClass: 'retryable',
        code: 'rate_limited',
        retryAfterMs: null,
      });
      expect(err.message).toContain('Too many requests');
    });

    it('classifies other 4xx as fatal and never shows the key', async () => {
      stub.reply(
        {
          status: 400,
          json: { error_code: 'invalid_audio', title: 'Bad Request', message: 'clip too short' },
        },
        { status: 401, text: `bad key ${KEY}` },
      );
      await expect(caught(provider.createVoice(request()))).resolves.toMatchObject({
        errorClass: 'fatal',
        code: 'invalid_audio',
        httpStatus: 400,
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'fatal', code: 'http_401' });
      expect(err.message).not.toContain(KEY);
    });

    it('classifies the voice_limit_reached code as capacity', async () => {
      stub.reply({ status: 400, json: { error_code: 'voice_limit_reached', message: 'full' } });
      await expect(caught(provider.createVoice(request()))).resolves.toMatchObject({
        errorClass: 'capacity',
      });
    });

    it('maps a hung request to the retryable code timeout', async () => {
      const fast = new CartesiaProvider({
        baseUrl: stub.url,
        apiKey: KEY,
        version: VERSION,
        timeoutMs: 150,
      });
      stub.reply('hang');
      const err = await caught(fast.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'timeout' });
    });
  });

  describe('delete and get', () => {
    it('deletes with 204, and takes 404 for already gone', async () => {
      stub.reply({ status: 204 }, { status: 404, text: 'Not Found' });
      await provider.deleteVoice('c1');
      await provider.deleteVoice('c1');
      expect(stub.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        'DELETE /voices/c1',
        'DELETE /voices/c1',
      ]);
      expect(stub.requests[0].headers['cartesia-version']).toBe(VERSION);
    });

    it('throws a retryable error when a delete meets a 503', async () => {
      stub.reply({ status: 503, text: 'down' });
      await expect(caught(provider.deleteVoice('c1'))).resolves.toMatchObject({
        errorClass: 'retryable',
      });
    });

    it('maps a voice and answers null on 404', async () => {
      stub.reply(
        { status: 200, json: voice('c1', 'vs_key:k1') },
        { status: 404, json: { error_code: 'not_found', title: 'Not Found', message: 'no voice' } },
      );
      await expect(provider.getVoice('c1')).resolves.toEqual({
        remoteVoiceId: 'c1',
        name: 'C1',
        idempotencyKey: 'k1',
        countsTowardLimit: true,
        createdAt: new Date('2025-01-02T03:04:05Z'),
      });
      await expect(provider.getVoice('c2')).resolves.toBeNull();
      expect(stub.requests[1]).toMatchObject({ method: 'GET', path: '/voices/c2' });
    });
  });

  describe('listing', () => {
    it('lists owned voices with limit and starting_after', async () => {
      stub.reply(
        { status: 200, json: { data: [voice('a'), voice('b')], has_more: true, next_page: 'b' } },
        { status: 200, json: { data: [voice('c')], has_more: false, next_page: null } },
      );
      const first = await provider.listVoices();
      expect(first.voices.map((v) => v.remoteVoiceId)).toEqual(['a', 'b']);
      expect(first.nextCursor).toBe('b');
      const second = await provider.listVoices(first.nextCursor);
      expect(second).toMatchObject({ nextCursor: null });
      const [q1, q2] = stub.requests.map((r) => r.query);
      expect(stub.requests[0].path).toBe('/voices');
      expect(q1.get('limit')).toBe('100');
      expect(q1.get('is_owner')).toBe('true');
      expect(q1.has('starting_after')).toBe(false);
      expect(q2.get('starting_after')).toBe('b');
    });

    it('falls back to the last id when next_page is missing', async () => {
      stub.reply({ status: 200, json: { data: [voice('a'), voice('z')], has_more: true } });
      await expect(provider.listVoices()).resolves.toMatchObject({ nextCursor: 'z' });
    });

    it('pages through owned voices to find the exact key', async () => {
      stub.reply(
        {
          status: 200,
          json: {
            data: [voice('a', 'vs_key:key-7890'), voice('b')],
            has_more: true,
            next_page: 'b',
          },
        },
        { status: 200, json: { data: [voice('c', 'vs_key:key-789')], has_more: false } },
      );
      const found = await provider.findByIdempotencyKey('key-789');
      expect(found?.remoteVoiceId).toBe('c');
      expect(stub.requests).toHaveLength(2);
    });
  });

  it('exposes no account cap and makes no request for it', async () => {
    await expect(provider.getAccountLimits()).resolves.toEqual({
      voiceLimit: null,
      voiceSlotsUsed: null,
      cloneBudget: null,
    });
    expect(stub.requests).toHaveLength(0);
  });
});
