import {
  ArgumentsHost,
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Response } from 'express';

/** An error the API answers with a stable code. Every HTTP error of the service is one of these. */
export class ApiError extends HttpException {
  constructor(
    status: number,
    readonly code: string,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail, status);
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
};

function titleOf(status: number): string {
  const name = HttpStatus[status];
  return typeof name === 'string'
    ? name
        .toLowerCase()
        .split('_')
        .map((w) => w[0].toUpperCase() + w.slice(1))
        .join(' ')
    : 'Error';
}

export function problemOf(status: number, code: string, detail: string): Problem {
  return {
    type: `https://voice-slots.dev/problems/${code}`,
    title: titleOf(status),
    status,
    detail,
    code,
  };
}

/**
 * One error shape for every route: application/problem+json with a stable code. Unknown errors
 * become a bare 500 without message or stack, and are logged in full instead.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let problem: Problem;
    let headers: Record<string, string> = {};
    if (exception instanceof ApiError) {
      problem = problemOf(exception.getStatus(), exception.code, exception.message);
      headers = exception.headers;
    } else if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const body = exception.getResponse();
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? body.message
          : exception.message;
      const detail = Array.isArray(message) ? message.join('; ') : String(message);
      problem = problemOf(status, CODE_BY_STATUS[status] ?? 'error', detail);
    } else if (isBodyParserError(exception)) {
      problem = problemOf(
        exception.status,
        exception.status === 413 ? 'payload_too_large' : 'bad_request',
        'The request body could not be read',
      );
    } else {
      this.logger.error({ err: exception }, 'unhandled error');
      problem = problemOf(500, 'internal_error', 'An unexpected error occurred');
    }
    if (res.headersSent) return;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
  }
}

function isBodyParserError(e: unknown): e is { status: number; type: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    'status' in e &&
    'type' in e &&
    typeof (e as { status: unknown }).status === 'number'
  );
}
