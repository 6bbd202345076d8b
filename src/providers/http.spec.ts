import { parseRetryAfter } from './http';
import { describeKey, keyFromDescription, keyFromMetadata } from './voice-metadata';

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-06-01T12:00:00Z');
  it.each([
    [null, null],
    [undefined, null],
    ['', null],
    ['0', 0],
    ['7', 7000],
    ['1.5', 1500],
    ['Sun, 01 Jun 2025 12:00:30 GMT', 30_000],
    ['Sun, 01 Jun 2025 11:00:00 GMT', 0],
    ['soon', null],
    ['-3', null],
  ])('reads %p as %p ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('idempotency key metadata', () => {
  it('round-trips through the description', () => {
    expect(keyFromDescription(describeKey('abc-1'))).toBe('abc-1');
    expect(keyFromDescription(`Cloned for a user. ${describeKey('abc-1')}`)).toBe('abc-1');
    expect(keyFromDescription('no key here')).toBeNull();
    expect(keyFromDescription('not_vs_key:abc')).toBeNull();
    expect(keyFromDescription(undefined)).toBeNull();
  });

  it('prefers labels over the description', () => {
    expect(keyFromMetadata({ vs_key: 'L' }, 'vs_key:D')).toBe('L');
    expect(keyFromMetadata({}, 'vs_key:D')).toBe('D');
    expect(keyFromMetadata(null, '')).toBeNull();
  });
});
