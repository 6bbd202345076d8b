import { randomBytes } from 'node:crypto';
import { ElevenLabsProvider } from './elevenlabs.provider';
import { INLINE_SAMPLE_BYTES } from './http';
import {
  memorySample,
  parseMultipart,
  startStubServer,
  type StubServer,
} from './testing/stub-server';
import { caught } from './testing/caught';

const KEY = 'sk_test_secret_key_123';

describe('ElevenLabsProvider against a stub', () => {
  let stub: StubServer;
  let provider: ElevenLabsProvider;
  const audio = randomBytes(200_000);
  const request = () => ({
    name: 'Alice',
    idempotencyKey: 'key-123',
    sample: memorySample(audio, { filename: 'alice.wav', contentType: 'audio/wav' }),
  });

  beforeEach(async () => {
    stub = await startStubServer();
    provider = new ElevenLabsProvider({ baseUrl: `${stub.url}/`, apiKey: KEY, timeoutMs: 2000 });
  });
  afterEach(() => stub.close());

  describe('createVoice', () => {
    it('posts the multipart form of PROVIDERS.md with the file intact', async () => {
      stub.reply({ status: 200, json: { voice_id: 'v1', requires_verification: false } });
      const req = request();
      await expect(provider.createVoice(req)).resolves.toEqual({ remoteVoiceId: 'v1' });

      expect(stub.requests).toHaveLength(1);
      const r = stub.requests[0];
      expect(r.method).toBe('POST');
      expect(r.path).toBe('/v1/voices/add');
      expect(r.headers['xi-api-key']).toBe(KEY);
      expect(r.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
      // A clip this small goes as one buffered body with its length.
      expect(r.headers['transfer-encoding']).toBeUndefined();
      expect(Number(r.headers['content-length'])).toBe(r.body.length);
      const parts = await parseMultipart(r);
      expect(parts.map((p) => p.name)).toEqual(['name', 'files', 'description', 'labels']);
      const byName = Object.fromEntries(parts.map((p) => [p.name, p]));
      expect(byName.name.value).toBe('Alice');
      expect(byName.files.filename).toBe('alice.wav');
      expect(byName.files.mimeType).toBe('audio/wav');
      expect(byName.files.data!.equals(audio)).toBe(true);
      expect(byName.description.value).toContain('vs_key:key-123');
      expect(JSON.parse(byName.labels.value!)).toEqual({ vs_key: 'key-123' });
      expect(req.sample.opened).toBe(1);
    });

    it('streams a sample larger than the inline limit instead of holding it whole', async () => {
      stub.reply({ status: 200, json: { voice_id: 'v2', requires_verification: false } });
      const big = randomBytes(INLINE_SAMPLE_BYTES + 1);
      const req = {
        ...request(),
        sample: memorySample(big, { filename: 'big.wav', contentType: 'audio/wav' }),
      };
      await expect(provider.createVoice(req)).resolves.toEqual({ remoteVoiceId: 'v2' });
      const r = stub.requests[0];
      expect(r.headers['transfer-encoding']).toBe('chunked');
      const files = (await parseMultipart(r)).find((p) => p.name === 'files');
      expect(files?.data?.equals(big)).toBe(true);
    });

    it('makes exactly one request on a 500 and calls it retryable', async () => {
      stub.reply({ status: 500, json: { detail: { status: 'internal_error', message: 'boom' } } });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        errorClass: 'retryable',
        code: 'internal_error',
        httpStatus: 500,
      });
      expect(stub.requests).toHaveLength(1);
    });

    it('classifies voice_limit_reached as capacity', async () => {
      stub.reply({
        status: 400,
        json: {
          detail: {
            status: 'voice_limit_reached',
            message: 'You have reached your maximum amount of custom voices (10 / 10)',
          },
        },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        provider: 'elevenlabs',
        errorClass: 'capacity',
        code: 'voice_limit_reached',
        httpStatus: 400,
      });
      expect(err.message).toContain('10 / 10');
    });

    it('classifies quota_exceeded (credits) as fatal, not capacity', async () => {
      stub.reply({
        status: 401,
        json: { detail: { status: 'quota_exceeded', message: 'credits' } },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'fatal', code: 'quota_exceeded' });
    });

    it('classifies 429 as retryable and reads Retry-After in seconds', async () => {
      stub.reply({
        status: 429,
        headers: { 'retry-after': '3' },
        json: { detail: { status: 'too_many_concurrent_requests', message: 'slow down' } },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        errorClass: 'retryable',
        code: 'too_many_concurrent_requests',
        httpStatus: 429,
        retryAfterMs: 3000,
      });
      expect(stub.requests).toHaveLength(1);
    });

    it('reads Retry-After as an HTTP date', async () => {
      const at = new Date(Date.now() + 10_000).toUTCString();
      stub.reply({
        status: 429,
        headers: { 'retry-after': at },
        json: { detail: { status: 'system_busy', message: 'busy' } },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err.errorClass).toBe('retryable');
      expect(err.retryAfterMs).toBeGreaterThan(7_000);
      expect(err.retryAfterMs).toBeLessThanOrEqual(10_000);
    });

    it('reads the newer envelope and leaves retryAfterMs null without Retry-After', async () => {
      stub.reply({
        status: 429,
        json: { detail: { type: 'rate_limit_error', code: 'system_busy', request_id: 'r1' } },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({
        errorClass: 'retryable',
        code: 'system_busy',
        retryAfterMs: null,
      });
      expect(err.message).toContain('r1');
    });

    it('classifies a 422 list-shaped detail as fatal', async () => {
      stub.reply({
        status: 422,
        json: { detail: [{ loc: ['body', 'name'], msg: 'Field required', type: 'missing' }] },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'fatal', code: 'validation_error', httpStatus: 422 });
      expect(err.message).toContain('body.name: Field required');
    });

    it('classifies invalid_api_key as fatal and never shows the key', async () => {
      stub.reply({
        status: 401,
        json: { detail: { status: 'invalid_api_key', message: `Invalid API key ${KEY}` } },
      });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'fatal', code: 'invalid_api_key', httpStatus: 401 });
      expect(err.message).not.toContain(KEY);
    });

    it('classifies 5xx plain text and 408 as retryable', async () => {
      stub.reply({ status: 503, text: 'upstream unavailable' }, { status: 408, text: '' });
      await expect(caught(provider.createVoice(request()))).resolves.toMatchObject({
        errorClass: 'retryable',
        code: 'http_503',
      });
      await expect(caught(provider.createVoice(request()))).resolves.toMatchObject({
        errorClass: 'retryable',
        code: 'http_408',
      });
    });

    it('maps a hung request to the retryable code timeout', async () => {
      const fast = new ElevenLabsProvider({ baseUrl: stub.url, apiKey: KEY, timeoutMs: 150 });
      stub.reply('hang');
      const started = Date.now();
      const err = await caught(fast.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'timeout', httpStatus: null });
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('maps a dropped connection to a retryable network error', async () => {
      stub.reply('destroy');
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'network_error' });
    });

    it('tells a failing sample apart from a network error', async () => {
      const req = { ...request(), sample: memorySample(audio, { failAfterBytes: 50_000 }) };
      const err = await caught(provider.createVoice(req));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'sample_read_failed' });
    });

    it('makes no request when the sample cannot be opened', async () => {
      const req = request();
      req.sample.open = () => Promise.reject(new Error('no such file'));
      const err = await caught(provider.createVoice(req));
      expect(err.code).toBe('sample_read_failed');
      expect(stub.requests).toHaveLength(0);
    });

    it('calls an answer without voice_id retryable, since the voice may exist', async () => {
      stub.reply({ status: 200, json: {} });
      const err = await caught(provider.createVoice(request()));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'invalid_response' });
    });
  });

  describe('deleteVoice', () => {
    it('sends DELETE /v1/voices/{id}', async () => {
      stub.reply({ status: 200, json: { status: 'ok' } });
      await provider.deleteVoice('abc/1');
      expect(stub.requests[0]).toMatchObject({ method: 'DELETE', path: '/v1/voices/abc%2F1' });
      expect(stub.requests[0].headers['xi-api-key']).toBe(KEY);
    });

    it.each([
      [400, { detail: { status: 'voice_not_found', message: 'gone' } }],
      [404, { detail: { status: 'voice_not_found', message: 'gone' } }],
      [400, { detail: { status: 'voice_does_not_exist', message: 'gone' } }],
      [404, { detail: { type: 'not_found', code: 'voice_not_found', request_id: 'x' } }],
    ])('treats %i %j as already gone', async (status, json) => {
      stub.reply({ status, json });
      await expect(provider.deleteVoice('v1')).resolves.toBeUndefined();
    });

    it('throws other failures', async () => {
      stub.reply({ status: 500, text: 'oops' });
      await expect(caught(provider.deleteVoice('v1'))).resolves.toMatchObject({
        errorClass: 'retryable',
      });
    });

    it('does not take a 404 without a voice code for success (wrong base URL)', async () => {
      stub.reply({ status: 404, json: { detail: 'Not Found' } });
      await expect(caught(provider.deleteVoice('v1'))).resolves.toMatchObject({
        errorClass: 'fatal',
        code: 'http_404',
      });
    });
  });

  describe('getVoice', () => {
    it('maps a voice and reads the key from labels', async () => {
      stub.reply({
        status: 200,
        json: {
          voice_id: 'v1',
          name: 'Alice',
          category: 'cloned',
          description: 'whatever',
          labels: { vs_key: 'k1' },
          created_at_unix: 1_700_000_000,
        },
      });
      await expect(provider.getVoice('v1')).resolves.toEqual({
        remoteVoiceId: 'v1',
        name: 'Alice',
        idempotencyKey: 'k1',
        countsTowardLimit: true,
        createdAt: new Date(1_700_000_000_000),
      });
      expect(stub.requests[0]).toMatchObject({ method: 'GET', path: '/v1/voices/v1' });
    });

    it('answers null on 404 voice_not_found', async () => {
      stub.reply({ status: 404, json: { detail: { status: 'voice_not_found', message: 'no' } } });
      await expect(provider.getVoice('v1')).resolves.toBeNull();
    });

    it('reads the key from the description and ignores premade voices for the limit', async () => {
      stub.reply({
        status: 200,
        json: { voice_id: 'p', name: 'Rachel', category: 'premade', description: 'x vs_key:k9' },
      });
      await expect(provider.getVoice('p')).resolves.toMatchObject({
        idempotencyKey: 'k9',
        countsTowardLimit: false,
        createdAt: null,
      });
    });
  });
});
