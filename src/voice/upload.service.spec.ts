import fc from 'fast-check';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { makeFlac, makeMp3, makeWavHeaderWithJunk } from '../../test/support/audio';
import { multipart, uploadForm, type Part } from '../../test/support/multipart';
import { makeWav } from '../../test/support/wav';
import type { AppConfig } from '../config/config.module';
import { ApiError } from '../common/problem';
import { LocalSampleStorage } from './local-sample-storage';
import { UploadService } from './upload.service';

const MAX_BYTES = 200_000;

describe('UploadService', () => {
  let dir: string;
  let uploads: UploadService;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vs-upload-spec-'));
    const config = {
      MAX_SAMPLE_BYTES: MAX_BYTES,
      MIN_SAMPLE_SECONDS: 1,
      MAX_SAMPLE_SECONDS: 5,
    } as AppConfig;
    uploads = new UploadService(config, new LocalSampleStorage(dir));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Every file under the storage dir, including half-written `.part` files. */
  const stored = (): string[] =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name);

  const receive = (parts: Part[], opts: { boundary?: string; terminate?: boolean } = {}) => {
    const { body, contentType } = multipart(parts, opts);
    return uploads.receive(
      { 'content-type': contentType, 'content-length': String(body.length) },
      Readable.from([body], { objectMode: false }),
    );
  };

  /** Settles with the ApiError's status and code, so expectations read as the HTTP answer. */
  const answer = (p: Promise<unknown>) =>
    p.then(
      () => ({ status: 202, code: 'accepted' }),
      (err: unknown) => {
        if (!(err instanceof ApiError)) throw err;
        return { status: err.getStatus(), code: err.code };
      },
    );

  it('stores a real recording and reports what its bytes are, not what the client said', async () => {
    const wav = makeWav(2, 16_000, 1);
    const res = await receive(uploadForm(wav, { language: 'pt-BR' }, 'grandma.mp3', 'audio/mpeg'));
    expect(res.fields).toEqual({ name: 'Grandma', provider: 'elevenlabs', language: 'pt-BR' });
    expect(res.stored.sizeBytes).toBe(wav.length);
    expect(res.audio).toEqual({
      format: 'wav',
      contentType: 'audio/wav',
      durationMs: 2000,
      sampleRate: 16_000,
      channels: 1,
    });
    expect(res.clientContentType).toBe('audio/mpeg');
    expect(stored()).toEqual([res.voiceId]);
  });

  it('accepts the other formats by their bytes', async () => {
    expect((await receive(uploadForm(makeMp3(2), {}, 'x.bin', 'text/plain'))).audio.format).toBe(
      'mp3',
    );
    expect((await receive(uploadForm(makeFlac(2)))).audio.format).toBe('flac');
  });

  it.each([
    ['text named .wav', Buffer.from('hello '.repeat(100)), 415, 'unsupported_media_type'],
    ['a WAV header followed by junk', makeWavHeaderWithJunk(), 422, 'sample_unreadable'],
    ['a sample too short', makeWav(0.3), 422, 'sample_too_short'],
    ['a sample too long', makeWav(6, 8000), 422, 'sample_too_long'],
    ['an empty file', Buffer.alloc(0), 422, 'validation_failed'],
    ['a file over the cap', Buffer.alloc(MAX_BYTES + 1), 413, 'sample_too_large'],
  ])('refuses %s and leaves no file', async (_label, file, status, code) => {
    expect(await answer(receive(uploadForm(file)))).toEqual({ status, code });
    expect(stored()).toEqual([]);
  });

  it("says unreadable audio in plain words, never the parser's text", async () => {
    const err = (await receive(uploadForm(makeWavHeaderWithJunk())).catch(
      (e: unknown) => e,
    )) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect({ code: err.code, detail: err.message }).toEqual({
      code: 'sample_unreadable',
      detail: 'The audio could not be read',
    });
  });

  it('stops an oversized file mid-stream without waiting for or keeping the rest', async () => {
    const body = new PassThrough();
    const { body: head } = multipart(uploadForm(Buffer.alloc(0)), { terminate: false });
    const pending = answer(uploads.receive({ 'content-type': multipart([]).contentType }, body));
    // The file part's header, then far more than the cap, in small chunks.
    body.write(head.subarray(0, head.length - 2));
    for (let i = 0; i < 40; i++) body.write(Buffer.alloc(16_384, 1));
    body.end('\r\n--x-voice-slots-test-boundary--\r\n');
    expect(await pending).toEqual({ status: 413, code: 'sample_too_large' });
    expect(stored()).toEqual([]);
  });

  it('refuses a declared Content-Length over the cap before reading anything', async () => {
    const body = new PassThrough();
    const res = await answer(
      uploads.receive(
        { 'content-type': multipart([]).contentType, 'content-length': String(MAX_BYTES * 10) },
        body,
      ),
    );
    expect(res).toEqual({ status: 413, code: 'sample_too_large' });
  });

  it('refuses a form cut short, and removes the half-written file', async () => {
    const { body } = multipart(uploadForm(makeWav(2)), { terminate: false });
    const res = await answer(
      uploads.receive(
        { 'content-type': multipart([]).contentType },
        Readable.from([body.subarray(0, body.length - 5000)], { objectMode: false }),
      ),
    );
    expect(res).toEqual({ status: 400, code: 'malformed_multipart' });
    expect(stored()).toEqual([]);
  });

  it('gives up when the client goes away mid-upload, and removes the half-written file', async () => {
    const body = new PassThrough();
    const { body: form } = multipart(uploadForm(makeWav(2)));
    const pending = answer(uploads.receive({ 'content-type': multipart([]).contentType }, body));
    body.write(form.subarray(0, 20_000));
    await new Promise((r) => setTimeout(r, 20));
    body.destroy(new Error('aborted'));
    expect(await pending).toEqual({ status: 400, code: 'malformed_multipart' });
    expect(stored()).toEqual([]);
  });

  it.each<[string, Part[], string]>([
    ['no file part', [{ name: 'name', value: 'A' }], 'file'],
    [
      'two files',
      [...uploadForm(makeWav(2)), { name: 'file', value: makeWav(2), filename: 'b.wav' }],
      'one file',
    ],
    [
      'a file under another name',
      [...uploadForm(makeWav(2)), { name: 'other', value: makeWav(2), filename: 'b.wav' }],
      'one file',
    ],
    ['a field twice', [...uploadForm(makeWav(2)), { name: 'name', value: 'B' }], 'more than once'],
    ['a huge field', uploadForm(makeWav(2), { name: 'n'.repeat(100_000) }), 'too long'],
    ['a bidi override in the name', uploadForm(makeWav(2), { name: 'abc\u202edcba' }), 'control'],
    ['a NUL in the name', uploadForm(makeWav(2), { name: 'a\u0000b' }), 'control'],
    ['an unknown provider', uploadForm(makeWav(2), { provider: "x' OR 1=1 --" }), 'provider'],
    [
      'too many parts',
      [
        ...Array.from({ length: 12 }, (_, i) => ({ name: `f${i}`, value: 'x' })),
        ...uploadForm(makeWav(2)),
      ],
      'too many',
    ],
  ])('refuses %s with validation_failed and leaves no file', async (_label, parts, detail) => {
    const err = await receive(parts).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('validation_failed');
    expect((err as ApiError).message).toContain(detail);
    expect(stored()).toEqual([]);
  });

  it('never uses the client file name as a path, and keeps only a clean label of it', async () => {
    const res = await receive(uploadForm(makeWav(2), {}, '../../etc/passwd\u202e'));
    expect(res.clientFilename).toBe('passwd');
    expect(stored()).toEqual([res.voiceId]);
    // RFC 5987 lets a name carry any byte, NUL included (which Postgres would refuse to store).
    const encoded = await receive([
      ...uploadForm(makeWav(2)).slice(0, 2),
      {
        name: 'file',
        value: makeWav(2),
        raw: `Content-Disposition: form-data; name="file"; filename*=utf-8''..%2F..%2Fa%00b%E2%80%AE.wav`,
      },
    ]);
    expect(encoded.clientFilename).toBe('ab.wav');
    // A raw NUL in the part header is not a header at all.
    expect(await answer(receive(uploadForm(makeWav(2), {}, 'a\u0000b')))).toEqual({
      status: 400,
      code: 'malformed_multipart',
    });
    const other = await receive(uploadForm(makeWav(2), {}, '..'));
    expect(other.clientFilename).toBe('sample');
  });

  it('ignores a field named __proto__ and other unknown fields', async () => {
    const res = await receive([
      { name: '__proto__', value: 'polluted' },
      { name: 'constructor', value: 'x' },
      ...uploadForm(makeWav(2)),
    ]);
    expect(res.fields).toEqual({ name: 'Grandma', provider: 'elevenlabs' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses what is not multipart, and a multipart without a boundary', async () => {
    const body = () => Readable.from([Buffer.from('{}')], { objectMode: false });
    expect(await answer(uploads.receive({ 'content-type': 'application/json' }, body()))).toEqual({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(
      await answer(uploads.receive({ 'content-type': 'multipart/form-data' }, body())),
    ).toEqual({ status: 400, code: 'malformed_multipart' });
    const headers: IncomingHttpHeaders = { 'content-type': 'multipart/form-data; boundary=other' };
    const { body: form } = multipart(uploadForm(makeWav(2)));
    expect(
      await answer(uploads.receive(headers, Readable.from([form], { objectMode: false }))),
    ).toMatchObject({ status: expect.any(Number) });
    expect(stored()).toEqual([]);
  });

  it('answers any byte soup with an ApiError and leaves no file', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 3000 }),
        fc.string({ maxLength: 50 }),
        fc.boolean(),
        async (bytes, name, terminate) => {
          const res = await answer(
            receive(uploadForm(Buffer.from(bytes), { name }), { terminate }),
          );
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(stored()).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });
});
