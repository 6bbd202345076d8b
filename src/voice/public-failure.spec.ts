import type { Voice } from './voice';
import { toVoiceDto } from './voice.dto';

const failed = (failureCode: string, failureMessage: string): Voice =>
  ({
    id: 'v1',
    name: 'n',
    provider: 'elevenlabs',
    status: 'failed',
    remoteVoiceId: null,
    sample: { format: null },
    attempts: 5,
    failureCode,
    failureMessage,
    lastUsedAt: null,
    leaseExpiresAt: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  }) as unknown as Voice;

/** What a provider or a parser wrote: hosts, addresses, paths, its own words. */
const RAW =
  'elevenlabs POST /v1/voices/add failed: connect ECONNREFUSED 10.1.2.3:443 (https://proxy.internal/x) /app/data/samples/v1';

describe('the failure a client sees', () => {
  it.each([
    ['invalid_api_key', 'provider_rejected', 'The provider refused to clone this voice.'],
    ["<script>'; DROP", 'provider_rejected', 'The provider refused to clone this voice.'],
    [
      'attempts_exhausted',
      'attempts_exhausted',
      'The provider could not clone the voice after several attempts.',
    ],
    ['sample_unreadable', 'sample_unreadable', 'The audio could not be read.'],
  ])('turns %s into our code %s and plain words', (stored, code, message) => {
    const dto = toVoiceDto(failed(stored, RAW), null);
    expect(dto.failure).toEqual({ code, message, attempts: 5 });
    expect(JSON.stringify(dto)).not.toMatch(
      /10\.1\.2\.3|proxy\.internal|\/app\/|ECONNREFUSED|elevenlabs POST/,
    );
  });

  it('keeps the raw code and message for the admin view', () => {
    expect(toVoiceDto(failed('invalid_api_key', RAW), null, { raw: true }).failure).toEqual({
      code: 'invalid_api_key',
      message: RAW,
      attempts: 5,
    });
  });
});
