import { ElevenLabsProvider } from './elevenlabs.provider';
import { startStubServer, type StubServer } from './testing/stub-server';
import { caught } from './testing/caught';

const KEY = 'sk_test_secret_key_123';

describe('ElevenLabsProvider against a stub: listing and account limits', () => {
  let stub: StubServer;
  let provider: ElevenLabsProvider;

  beforeEach(async () => {
    stub = await startStubServer();
    provider = new ElevenLabsProvider({ baseUrl: `${stub.url}/`, apiKey: KEY, timeoutMs: 2000 });
  });
  afterEach(() => stub.close());

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
