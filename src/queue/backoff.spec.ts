import { ProviderError } from '../providers/provider-error';
import { backoffDelayMs, MAX_RETRY_AFTER_MS } from './backoff';

describe('backoffDelayMs', () => {
  it('grows exponentially with jitter between half and all of the ceiling', () => {
    expect(backoffDelayMs(1, undefined, () => 0)).toBe(500);
    expect(backoffDelayMs(1, undefined, () => 1)).toBe(1000);
    expect(backoffDelayMs(4, undefined, () => 1)).toBe(8000);
    expect(backoffDelayMs(4, undefined, () => 0)).toBe(4000);
  });

  it('is capped at a minute', () => {
    expect(backoffDelayMs(30, undefined, () => 1)).toBe(60_000);
  });

  it("never retries sooner than the provider's Retry-After", () => {
    const err = new ProviderError('elevenlabs', 'retryable', 'system_busy', 'busy', 429, 20_000);
    expect(backoffDelayMs(1, err, () => 1)).toBe(20_000);
  });

  it('caps a Retry-After at five minutes, and ignores one that is not a number', () => {
    const year = new ProviderError('elevenlabs', 'retryable', 'busy', 'busy', 429, 31_536_000_000);
    expect(backoffDelayMs(1, year, () => 1)).toBe(MAX_RETRY_AFTER_MS);
    expect(MAX_RETRY_AFTER_MS).toBe(300_000);
    const odd = Object.assign(new Error('x'), { retryAfterMs: Number.POSITIVE_INFINITY });
    expect(backoffDelayMs(1, odd, () => 1)).toBe(1000);
  });

  it('waits a chosen delay out exactly, however often the job was retried', () => {
    expect(
      backoffDelayMs(
        40,
        Object.assign(new Error('breaker open'), { fixedDelayMs: 2_000 }),
        () => 0,
      ),
    ).toBe(2_000);
    expect(
      backoffDelayMs(
        40,
        Object.assign(new Error('breaker open'), { fixedDelayMs: 2_000 }),
        () => 1,
      ),
    ).toBe(2_000);
  });
});
