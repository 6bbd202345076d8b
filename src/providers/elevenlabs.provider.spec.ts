import { randomBytes } from 'node:crypto';
import { classifyElevenLabsError, ElevenLabsProvider } from './elevenlabs.provider';
import { INLINE_SAMPLE_BYTES } from './http';
import { ProviderError } from './provider-error';
import {
  memorySample,
  parseMultipart,
  startStubServer,
  type StubServer,
} from './testing/stub-server';

const KEY = 'sk_test_secret_key_123';

async function caught(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

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

  describe('listing', () => {
    it('lists cloned voices with page_size and next_page_token', async () => {
      stub.reply({
        status: 200,
        json: {
          voices: [{ voice_id: 'a', name: 'A', category: 'cloned', labels: {} }],
          has_more: true,
          next_page_token: 'tok2',
        },
      });
      const page = await provider.listVoices();
      expect(page.nextCursor).toBe('tok2');
      expect(page.voices.map((v) => v.remoteVoiceId)).toEqual(['a']);
      const q = stub.requests[0].query;
      expect(stub.requests[0].path).toBe('/v2/voices');
      expect(q.get('page_size')).toBe('100');
      expect(q.get('category')).toBe('cloned');
      expect(q.has('next_page_token')).toBe(false);

      stub.reply({ status: 200, json: { voices: [], has_more: false, next_page_token: 'x' } });
      await expect(provider.listVoices('tok2')).resolves.toEqual({ voices: [], nextCursor: null });
      expect(stub.requests[1].query.get('next_page_token')).toBe('tok2');
    });

    it('finds by key with search, checks the exact key and follows pages', async () => {
      stub.reply(
        {
          status: 200,
          json: {
            voices: [
              { voice_id: 'near', name: 'N', labels: { vs_key: 'key-1234' } },
              { voice_id: 'foreign', name: 'F', description: 'mentions key-123 loosely' },
            ],
            has_more: true,
            next_page_token: 'p2',
          },
        },
        {
          status: 200,
          json: {
            voices: [{ voice_id: 'hit', name: 'H', description: 'vs_key:key-123' }],
            has_more: false,
          },
        },
      );
      const found = await provider.findByIdempotencyKey('key-123');
      expect(found?.remoteVoiceId).toBe('hit');
      expect(stub.requests).toHaveLength(2);
      expect(stub.requests[0].query.get('search')).toBe('key-123');
      expect(stub.requests[1].query.get('search')).toBe('key-123');
      expect(stub.requests[1].query.get('next_page_token')).toBe('p2');
    });

    it('answers null when no voice carries the key', async () => {
      stub.reply({ status: 200, json: { voices: [], has_more: false } });
      await expect(provider.findByIdempotencyKey('nope')).resolves.toBeNull();
    });

    it('stops on a cursor that repeats', async () => {
      stub.reply({ status: 200, json: { voices: [], has_more: true, next_page_token: 'same' } });
      await expect(provider.findByIdempotencyKey('k')).resolves.toBeNull();
      expect(stub.requests).toHaveLength(2);
    });
  });

  it('reads the account limit from /v1/user/subscription', async () => {
    stub.reply({
      status: 200,
      json: {
        tier: 'creator',
        voice_limit: 30,
        voice_slots_used: 7,
        can_use_instant_voice_cloning: true,
      },
    });
    await expect(provider.getAccountLimits()).resolves.toEqual({
      voiceLimit: 30,
      voiceSlotsUsed: 7,
      cloneBudget: null,
    });
    expect(stub.requests[0]).toMatchObject({ method: 'GET', path: '/v1/user/subscription' });
  });

  it('reads the clone budget: counter, budget (null = none) and reset time', async () => {
    stub.reply({
      status: 200,
      json: {
        voice_limit: 30,
        voice_slots_used: 7,
        voice_add_edit_counter: 41,
        max_voice_add_edits: 95,
        next_character_count_reset_unix: 1_767_225_600,
      },
    });
    await expect(provider.getAccountLimits()).resolves.toMatchObject({
      cloneBudget: { used: 41, limit: 95, resetsAt: new Date(1_767_225_600_000) },
    });
    stub.reply({ status: 200, json: { voice_limit: 30, voice_add_edit_counter: 3 } });
    await expect(provider.getAccountLimits()).resolves.toMatchObject({
      cloneBudget: { used: 3, limit: null, resetsAt: null },
    });
  });

  it('maps a refused connection to a retryable network error', async () => {
    const url = stub.url;
    await stub.close();
    const gone = new ElevenLabsProvider({ baseUrl: url, apiKey: KEY });
    const err = await caught(gone.getAccountLimits());
    expect(err).toMatchObject({ errorClass: 'retryable', code: 'network_error' });
    expect(err.message).toContain('ECONNREFUSED');
    stub = await startStubServer();
  });
});

describe('classifyElevenLabsError: the clone budget and its neighbours', () => {
  const envelope = (code: string, message: string) =>
    JSON.stringify({ detail: { status: code, message } });
  const newer = (code: string) =>
    JSON.stringify({ detail: { type: 'forbidden', code, request_id: 'r1' } });

  // The status that carries a code varies; the code decides the class.
  it.each([403, 400, 429])(
    'voice_add_edit_limit_reached with status %i is the budget, not capacity or a retry',
    (status) => {
      for (const body of [
        envelope('voice_add_edit_limit_reached', 'You have reached your monthly limit'),
        newer('voice_add_edit_limit_reached'),
      ]) {
        expect(classifyElevenLabsError(status, body)).toMatchObject({
          errorClass: 'budget',
          code: 'voice_add_edit_limit_reached',
        });
      }
    },
  );

  it.each([
    [403, 'You have reached your monthly limit of voice add/edit operations.'],
    [400, 'Voice add_edit limit reached for this billing cycle'],
    [429, 'The limit of voice add / edit operations has been reached'],
  ])('status %i with only the message saying so is the budget', (status, message) => {
    expect(classifyElevenLabsError(status, envelope('forbidden', message))).toMatchObject({
      errorClass: 'budget',
      code: 'voice_add_edit_limit_reached',
    });
    expect(classifyElevenLabsError(status, JSON.stringify({ detail: message }))).toMatchObject({
      errorClass: 'budget',
    });
  });

  it.each([
    [401, 'quota_exceeded', 'fatal'],
    [402, 'quota_exceeded', 'fatal'],
    [401, 'invalid_api_key', 'fatal'],
    [400, 'voice_limit_reached', 'capacity'],
    [429, 'too_many_concurrent_requests', 'retryable'],
    [429, 'system_busy', 'retryable'],
  ])('status %i with %s keeps its own code and class (%s)', (status, code, errorClass) => {
    expect(classifyElevenLabsError(status, envelope(code, 'something else'))).toMatchObject({
      errorClass,
      code,
    });
  });

  it('a limit message about something else is not the budget', () => {
    expect(
      classifyElevenLabsError(
        400,
        envelope('voice_limit_reached', 'maximum amount of custom voices (10 / 10)'),
      ),
    ).toMatchObject({ errorClass: 'capacity' });
    expect(
      classifyElevenLabsError(401, envelope('quota_exceeded', 'character limit reached')),
    ).toMatchObject({ errorClass: 'fatal', code: 'quota_exceeded' });
  });
});
