import { serializeError } from './logging';

describe('serializeError', () => {
  it('keeps type, message, code and stack, and drops request configs that may hold keys', () => {
    const err = Object.assign(new Error('boom'), {
      code: 'ECONNRESET',
      config: { headers: { 'xi-api-key': 'sk-secret' } },
    });
    const out = serializeError(err);
    expect(out).toMatchObject({ type: 'Error', message: 'boom', code: 'ECONNRESET' });
    expect(JSON.stringify(out)).not.toContain('sk-secret');
  });

  it("reads pino's already-serialized form the same way", () => {
    const out = serializeError({
      type: 'QueryFailedError',
      message: 'relation missing',
      stack: 's',
      request: { headers: { authorization: 'Bearer x' } },
    });
    expect(out).toEqual({ type: 'QueryFailedError', message: 'relation missing', stack: 's' });
  });
});
