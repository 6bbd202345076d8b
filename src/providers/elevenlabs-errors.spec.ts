import { classifyElevenLabsError } from './elevenlabs.provider';

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
