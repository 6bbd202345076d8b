import { ElevenLabsProvider } from '../elevenlabs.provider';
import { type SandboxHandle, startSandbox } from './sandbox-server';
import { adaptersFor, audio, caught, listAll, req, SPEC_SANDBOX } from './testing/sandbox-fixture';

describe('provider sandbox: the ElevenLabs dialect with the real adapter', () => {
  let sandbox: SandboxHandle;
  let el: ElevenLabsProvider;

  beforeAll(async () => {
    sandbox = await startSandbox(SPEC_SANDBOX);
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    sandbox.reset();
    ({ el } = adaptersFor(sandbox));
  });

  describe('ElevenLabs', () => {
    it('creates, gets, lists in pages, finds, reports limits and deletes', async () => {
      const ids: string[] = [];
      for (const k of ['k1', 'k2', 'k3']) ids.push((await el.createVoice(req(k))).remoteVoiceId);
      expect(ids.every((id) => /^[A-Za-z0-9]{20}$/.test(id))).toBe(true);

      await expect(el.getVoice(ids[1])).resolves.toMatchObject({
        remoteVoiceId: ids[1],
        name: 'voice k2',
        idempotencyKey: 'k2',
        countsTowardLimit: true,
      });
      expect(await listAll(el)).toEqual(ids);
      await expect(el.findByIdempotencyKey('k3')).resolves.toMatchObject({ remoteVoiceId: ids[2] });
      await expect(el.findByIdempotencyKey('k')).resolves.toBeNull();
      await expect(el.getAccountLimits()).resolves.toMatchObject({
        voiceLimit: 3,
        voiceSlotsUsed: 3,
      });

      const state = sandbox.state().elevenlabs;
      expect(state.voices.map((v) => v.labels.vs_key)).toEqual(['k1', 'k2', 'k3']);
      expect(state.voices[0].description).toBe('vs_key:k1');
      expect(state.voices.every((v) => v.sampleBytes === audio.length)).toBe(true);
      expect(state).toMatchObject({
        createCount: 3,
        maxHeld: 3,
        held: 3,
        bytesReceived: audio.length * 3,
      });

      await el.deleteVoice(ids[0]);
      await expect(el.getVoice(ids[0])).resolves.toBeNull();
      await expect(el.deleteVoice(ids[0])).resolves.toBeUndefined();
      expect(sandbox.state().elevenlabs).toMatchObject({ held: 2, maxHeld: 3, deleteCount: 1 });
    });

    it('records the voices held over time, at each create and delete', async () => {
      const a = await el.createVoice(req('h1'));
      await el.createVoice(req('h2'));
      await el.deleteVoice(a.remoteVoiceId);
      sandbox.removeVoice('elevenlabs', sandbox.state().elevenlabs.voices[0].id);
      const history = sandbox.heldOverTime('elevenlabs');
      expect(history.map((h) => h.held)).toEqual([0, 1, 2, 1, 0]);
      expect(history.every((h, i) => i === 0 || h.at >= history[i - 1].at)).toBe(true);
      sandbox.reset();
      expect(sandbox.heldOverTime('elevenlabs').map((h) => h.held)).toEqual([0]);
    });

    it('answers voice_limit_reached when full, which the adapter calls capacity', async () => {
      for (const k of ['a', 'b', 'c']) await el.createVoice(req(k));
      const err = await caught(el.createVoice(req('d')));
      expect(err).toMatchObject({
        errorClass: 'capacity',
        code: 'voice_limit_reached',
        httpStatus: 400,
      });
      expect(err.message).toContain('(3 / 3)');
      expect(sandbox.state().elevenlabs).toMatchObject({
        voiceLimitReachedCount: 1,
        createAttempts: 4,
        createCount: 3,
        maxHeld: 3,
      });
    });

    it('requires the auth header and a non-empty file', async () => {
      const anon = new ElevenLabsProvider({ baseUrl: sandbox.baseUrl('elevenlabs') });
      await expect(caught(anon.getAccountLimits())).resolves.toMatchObject({
        errorClass: 'fatal',
        code: 'invalid_api_key',
        httpStatus: 401,
      });
      await expect(caught(el.createVoice(req('empty', Buffer.alloc(0))))).resolves.toMatchObject({
        errorClass: 'fatal',
        httpStatus: 400,
      });
      expect(sandbox.state().elevenlabs.voices).toHaveLength(0);
    });

    it('loses the answer of a create that did happen; the key finds the voice', async () => {
      sandbox.setConfig({ faults: { elevenlabs: { create: { lostAnswer: 1 } } } });
      const err = await caught(el.createVoice(req('lost-1')));
      expect(err).toMatchObject({ errorClass: 'retryable', code: 'network_error' });
      const state = sandbox.state().elevenlabs;
      expect(state.voices).toHaveLength(1);
      expect(state.faultsInjected.lostAnswer).toBe(1);
      const found = await el.findByIdempotencyKey('lost-1');
      expect(found?.remoteVoiceId).toBe(state.voices[0].id);

      // A blind retry clones twice: exactly what duplicateKeys exposes.
      sandbox.setConfig({ faults: { elevenlabs: {} } });
      await el.createVoice(req('lost-1'));
      expect(sandbox.state().elevenlabs.duplicateKeys).toEqual(['lost-1']);
    });

    it('injects 429 with Retry-After and 500 by operation', async () => {
      sandbox.setConfig({
        faults: {
          elevenlabs: { create: { rateLimit: 1, retryAfterSeconds: 2 }, get: { error5xx: 1 } },
        },
      });
      await expect(caught(el.createVoice(req('r')))).resolves.toMatchObject({
        errorClass: 'retryable',
        code: 'too_many_concurrent_requests',
        httpStatus: 429,
        retryAfterMs: 2000,
      });
      await expect(caught(el.getVoice('x'))).resolves.toMatchObject({
        errorClass: 'retryable',
        httpStatus: 500,
      });
      await expect(el.getAccountLimits()).resolves.toMatchObject({ voiceSlotsUsed: 0 });
      expect(sandbox.state().elevenlabs.voices).toHaveLength(0);
    });

    it('holds a request on the timeout fault until the adapter gives up', async () => {
      sandbox.setConfig({ faults: { elevenlabs: { any: { timeout: 1, timeoutMs: 10_000 } } } });
      const fast = new ElevenLabsProvider({
        baseUrl: sandbox.baseUrl('elevenlabs'),
        apiKey: 'k',
        timeoutMs: 200,
      });
      await expect(caught(fast.listVoices())).resolves.toMatchObject({
        errorClass: 'retryable',
        code: 'timeout',
      });
    });

    it('lists foreign voices with no key, and ignores premade ones', async () => {
      sandbox.addForeignVoice('elevenlabs', { name: 'by hand' });
      sandbox.addForeignVoice('elevenlabs', { name: 'Rachel', category: 'premade' });
      const page = await el.listVoices();
      expect(page.voices).toEqual([
        expect.objectContaining({ name: 'by hand', idempotencyKey: null, countsTowardLimit: true }),
      ]);
      await expect(el.getAccountLimits()).resolves.toMatchObject({
        voiceLimit: 3,
        voiceSlotsUsed: 1,
      });
    });
  });

  describe('ElevenLabs clone budget', () => {
    it('counts every clone, refuses past the budget with the real envelope, deletes refund nothing', async () => {
      sandbox.setConfig({ cloneBudget: { elevenlabs: { limit: 2, resetInSeconds: 3600 } } });
      const a = await el.createVoice(req('b1'));
      await el.deleteVoice(a.remoteVoiceId);
      await el.createVoice(req('b2'));
      const limits = await el.getAccountLimits();
      expect(limits.cloneBudget).toMatchObject({ used: 2, limit: 2 });
      const resetIn = (limits.cloneBudget?.resetsAt?.getTime() ?? 0) - Date.now();
      expect(resetIn).toBeGreaterThan(3590_000);
      expect(resetIn).toBeLessThanOrEqual(3600_000);

      const err = await caught(el.createVoice(req('b3')));
      expect(err).toMatchObject({
        errorClass: 'budget',
        code: 'voice_add_edit_limit_reached',
        httpStatus: 403,
      });
      expect(sandbox.state().elevenlabs).toMatchObject({ budgetRefusedCount: 1, createCount: 2 });
      expect(sandbox.state().elevenlabs.voices).toHaveLength(1);
    });

    it('resets the counter at the reset time and schedules the next cycle', async () => {
      sandbox.setConfig({
        cloneBudget: { elevenlabs: { limit: 1, resetInSeconds: 0.3, periodSeconds: 100 } },
      });
      await el.createVoice(req('r1'));
      await expect(caught(el.createVoice(req('r2')))).resolves.toMatchObject({
        errorClass: 'budget',
      });
      await new Promise((r) => setTimeout(r, 350));
      const after = await el.getAccountLimits();
      expect(after.cloneBudget?.used).toBe(0);
      expect((after.cloneBudget?.resetsAt?.getTime() ?? 0) - Date.now()).toBeGreaterThan(95_000);
      await expect(el.createVoice(req('r2'))).resolves.toHaveProperty('remoteVoiceId');
    });

    it('lets a test make the counter jump (spent by someone else) and publish no budget', async () => {
      sandbox.setConfig({ cloneBudget: { elevenlabs: { limit: 10, used: 10 } } });
      await expect(caught(el.createVoice(req('j1')))).resolves.toMatchObject({
        errorClass: 'budget',
      });
      sandbox.setConfig({ cloneBudget: { elevenlabs: { limit: null } } });
      await expect(el.getAccountLimits()).resolves.toMatchObject({
        cloneBudget: { used: 10, limit: null },
      });
      await expect(el.createVoice(req('j1'))).resolves.toHaveProperty('remoteVoiceId');
    });

    it('defaults to a budget large enough that nothing else notices it', async () => {
      const budget = (await el.getAccountLimits()).cloneBudget;
      expect(budget?.limit).toBeGreaterThanOrEqual(1_000_000);
      expect(sandbox.config().cloneBudget.elevenlabs).toMatchObject({ used: 0 });
    });
  });
});
