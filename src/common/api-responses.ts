/**
 * OpenAPI decorators for what every route shares, so generated clients see the real contract:
 * errors as `application/problem+json` with the Problem schema, and the headers the API reads
 * and sets (Idempotency-Key, Idempotent-Replayed, Retry-After, X-RateLimit-*).
 */
import { applyDecorators } from '@nestjs/common';
import {
  ApiExtraModels,
  ApiHeader,
  ApiResponse,
  getSchemaPath,
  type HeadersObject,
} from '@nestjs/swagger';
import { ProblemDto } from './problem.dto';

const DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed request',
  401: 'Missing or invalid bearer token',
  403: 'The token lacks the required scope',
  404: 'Not found (another user’s voice answers the same)',
  408: 'The upload was too slow',
  409: 'Conflict with the voice’s state or an idempotency key',
  413: 'Too large',
  415: 'Unsupported media type',
  422: 'Invalid input',
  429: 'Rate limited: wait Retry-After seconds',
  500: 'Internal error; nothing changed',
  503: 'A dependency is unavailable; retry later',
};

const RETRY_AFTER: HeadersObject = {
  'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
};

/** Error answers of a route, each a Problem as application/problem+json. */
export function ApiProblems(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ProblemDto),
    ...statuses.map((status) =>
      ApiResponse({
        status,
        description: DESCRIPTIONS[status] ?? 'Error',
        content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDto) } } },
        headers: status === 429 || status === 503 ? RETRY_AFTER : undefined,
      }),
    ),
  );
}

/** The headers a rate-limited route sets on every answer, for its budget `name`. */
export function rateLimitHeaders(name: string): HeadersObject {
  return {
    [`X-RateLimit-Limit-${name}`]: {
      description: `Requests allowed per window (budget ${name})`,
      schema: { type: 'string' },
    },
    [`X-RateLimit-Remaining-${name}`]: {
      description: 'Requests left in this window',
      schema: { type: 'integer' },
    },
    [`X-RateLimit-Reset-${name}`]: {
      description: 'Seconds until the window resets',
      schema: { type: 'integer' },
    },
  };
}

/** The optional Idempotency-Key request header of a creating route. */
export const ApiIdempotencyKey = () =>
  ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Retries with the same key and body return the first answer (with Idempotent-Replayed: true) ' +
      'instead of creating again; the same key with another body answers 409.',
    schema: { type: 'string', maxLength: 255 },
  });
