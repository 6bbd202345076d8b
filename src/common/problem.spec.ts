import {
  BadRequestException,
  HttpException,
  Logger,
  NotFoundException,
  ServiceUnavailableException,
  type ArgumentsHost,
} from '@nestjs/common';
import { ApiError, ProblemFilter } from './problem';

interface Captured {
  status: number;
  type: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

function answer(exception: unknown): Captured {
  const captured: Captured = { status: 0, type: '', headers: {}, body: {} };
  // A Fastify reply, as far as the filter uses one.
  const res = {
    raw: { headersSent: false, writableEnded: false },
    sent: false,
    header(k: string, v: string) {
      captured.headers[k] = v;
      return this;
    },
    status(s: number) {
      captured.status = s;
      return this;
    },
    type(t: string) {
      captured.type = t;
      return this;
    },
    send(text: string) {
      captured.body = JSON.parse(text) as Record<string, unknown>;
      return this;
    },
  };
  const host = { switchToHttp: () => ({ getResponse: () => res }) } as unknown as ArgumentsHost;
  new ProblemFilter().catch(exception, host);
  return captured;
}

/** Fastify's errors, as Nest hands them on: an HttpException whose cause has a FastifyError code. */
const fromFastify = (status: number, code: string, message: string) =>
  new HttpException(message, status, {
    cause: Object.assign(new Error(message), { code, statusCode: status, name: 'FastifyError' }),
  });

describe('ProblemFilter', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  it('answers an ApiError with its code and headers', () => {
    const res = answer(new ApiError(429, 'rate_limited', 'slow down', { 'Retry-After': '7' }));
    expect(res).toMatchObject({
      status: 429,
      type: 'application/problem+json; charset=utf-8',
      headers: { 'Retry-After': '7' },
      body: { status: 429, code: 'rate_limited', detail: 'slow down', title: 'Too Many Requests' },
    });
    expect(Object.keys(res.body).sort()).toEqual(['code', 'detail', 'status', 'title', 'type']);
  });

  it.each([
    ['an unknown route', new NotFoundException('Cannot GET /etc/passwd'), 404, 'not_found'],
    [
      'malformed JSON',
      fromFastify(400, 'FST_ERR_CTP_INVALID_JSON_BODY', 'Unexpected token'),
      400,
      'malformed_json',
    ],
    [
      "malformed JSON (Fastify's parser: a SyntaxError with status 400)",
      new HttpException('Unexpected token', 400, { cause: new SyntaxError('Unexpected token') }),
      400,
      'malformed_json',
    ],
    [
      'a JSON body too large',
      fromFastify(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'too large'),
      413,
      'payload_too_large',
    ],
    [
      'an unsupported media type',
      fromFastify(415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE', 'Unsupported Media Type: text/x-passwd'),
      415,
      'unsupported_media_type',
    ],
    [
      'bad percent-encoding',
      new BadRequestException('Failed to decode param', { cause: new URIError('URI malformed') }),
      400,
      'bad_request',
    ],
    [
      'a malformed URL',
      fromFastify(400, 'FST_ERR_BAD_URL', "'/etc/passwd%' is not a valid url component"),
      400,
      'bad_request',
    ],
    ['a bare 429', new HttpException('Too Many Requests', 429), 429, 'rate_limited'],
    ['a validation error', new HttpException('bad', 422), 422, 'validation_failed'],
  ])('maps %s to a stable code without echoing input', (_label, exception, status, code) => {
    const res = answer(exception);
    expect(res).toMatchObject({
      status,
      type: 'application/problem+json; charset=utf-8',
      body: { status, code },
    });
    expect(String(res.body.detail)).not.toMatch(/passwd|Unexpected token|URI malformed/);
  });

  it('never shows a stack or an internal message', () => {
    const err = new Error('connection to postgres://user:secret@db failed');
    const res = answer(err);
    expect(res).toMatchObject({ status: 500, body: { code: 'internal_error' } });
    expect(JSON.stringify(res.body)).not.toMatch(/secret|postgres|at /);
    const framework = answer(new ServiceUnavailableException('database pool exhausted at db:5432'));
    expect(framework).toMatchObject({ status: 503, body: { code: 'service_unavailable' } });
    expect(JSON.stringify(framework.body)).not.toContain('5432');
    expect(answer('a string thrown')).toMatchObject({ status: 500 });
    expect(answer(null)).toMatchObject({ status: 500 });
  });

  it('bounds how much of a client message it repeats', () => {
    const res = answer(new HttpException('x'.repeat(10_000), 400));
    expect(String(res.body.detail).length).toBeLessThanOrEqual(501);
  });
});
