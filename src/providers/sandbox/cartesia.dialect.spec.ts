import { CartesiaProvider } from '../cartesia.provider';
import { type SandboxHandle, startSandbox } from './sandbox-server';
import { adaptersFor, caught, listAll, req, SPEC_SANDBOX } from './testing/sandbox-fixture';

describe('provider sandbox: the Cartesia dialect with the real adapter', () => {
  let sandbox: SandboxHandle;
  let car: CartesiaProvider;

  beforeAll(async () => {
    sandbox = await startSandbox(SPEC_SANDBOX);
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    sandbox.reset();
    ({ car } = adaptersFor(sandbox));
  });

  it('creates, gets, lists in pages, finds and deletes', async () => {
    const ids: string[] = [];
    for (const k of ['c1', 'c2', 'c3']) ids.push((await car.createVoice(req(k))).remoteVoiceId);
    await expect(car.getVoice(ids[0])).resolves.toMatchObject({
      name: 'voice c1',
      idempotencyKey: 'c1',
      countsTowardLimit: true,
    });
    expect(await listAll(car)).toEqual(ids);
    await expect(car.findByIdempotencyKey('c3')).resolves.toMatchObject({
      remoteVoiceId: ids[2],
    });
    await expect(car.findByIdempotencyKey('c4')).resolves.toBeNull();
    await car.deleteVoice(ids[1]);
    await expect(car.deleteVoice(ids[1])).resolves.toBeUndefined();
    await expect(car.getVoice(ids[1])).resolves.toBeNull();
    const state = sandbox.state().cartesia;
    expect(state.voices.map((v) => v.language)).toEqual(['en', 'en']);
    expect(state).toMatchObject({ createCount: 3, maxHeld: 3, held: 2, limit: 4 });
  });

  it('requires Bearer auth and refuses an empty clip', async () => {
    const anon = new CartesiaProvider({ baseUrl: sandbox.baseUrl('cartesia'), version: 'v' });
    await expect(caught(anon.listVoices())).resolves.toMatchObject({
      errorClass: 'fatal',
      httpStatus: 401,
    });
    await expect(caught(car.createVoice(req('e', Buffer.alloc(0))))).resolves.toMatchObject({
      errorClass: 'fatal',
      httpStatus: 400,
    });
  });

  it('answers 429 concurrency_limited and enforces its configured limit', async () => {
    sandbox.setConfig({ faults: { cartesia: { create: { rateLimit: 1 } } } });
    await expect(caught(car.createVoice(req('x')))).resolves.toMatchObject({
      errorClass: 'retryable',
      code: 'concurrency_limited',
      retryAfterMs: null,
    });
    sandbox.setConfig({ faults: { cartesia: {} }, voiceLimit: { cartesia: 1 } });
    await car.createVoice(req('y'));
    await expect(caught(car.createVoice(req('z')))).resolves.toMatchObject({
      errorClass: 'capacity',
    });
    expect(sandbox.state().cartesia).toMatchObject({ voiceLimitReachedCount: 1, limit: 1 });
  });

  it('loses the answer of a create that did happen', async () => {
    sandbox.setConfig({ faults: { cartesia: { create: { lostAnswer: 1 } } } });
    await expect(caught(car.createVoice(req('lost-c')))).resolves.toMatchObject({
      errorClass: 'retryable',
    });
    await expect(car.findByIdempotencyKey('lost-c')).resolves.not.toBeNull();
  });
});
