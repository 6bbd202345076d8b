import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_RESPONSE_BYTES, parseRetryAfter, ProviderHttpClient } from './http';
import type { ProviderError } from './provider-error';
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

describe('ProviderHttpClient and the size of an answer', () => {
  let server: http.Server;
  let url: string;
  /** Bytes the server managed to write before the client hung up. */
  let sent = 0;
  let mode: 'endless' | 'under' = 'endless';

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (mode === 'under') {
        res.end(JSON.stringify({ pad: 'x'.repeat(MAX_RESPONSE_BYTES - 100) }));
        return;
      }
      // An answer without end: only the client's cap stops it.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const client = () =>
    new ProviderHttpClient({
      provider: 'elevenlabs',
      baseUrl: url,
      headers: {},
      timeoutMs: 20_000,
      classify: () => ({ errorClass: 'fatal', code: 'x', message: 'x' }),
    });

  it('refuses an endless answer soon after the cap, as a retryable invalid_response', async () => {
    mode = 'endless';
    const err = (await client()
      .request('GET', '/v1/voices')
      .catch((e: unknown) => e)) as ProviderError;
    expect({ class: err.errorClass, code: err.code }).toEqual({
      class: 'retryable',
      code: 'invalid_response',
    });
    // Read no more than the cap plus what was in flight.
    expect(sent).toBeLessThan(MAX_RESPONSE_BYTES * 8);
  });

  it('reads an answer under the cap', async () => {
    mode = 'under';
    const res = await client().request('GET', '/v1/voices');
    expect((res.json as { pad: string }).pad.length).toBe(MAX_RESPONSE_BYTES - 100);
  });
});
