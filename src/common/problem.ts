import {
  ArgumentsHost,
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  NotFoundException,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Response } from 'express';
import { isDatabaseUnavailable } from './database-errors';
import { problemTypeUri } from './problem-types';

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
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
};

/** Our generic code for an HTTP status (for errors nothing more specific describes). */
export function codeForStatus(status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal_error' : 'error');
}

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
    type: problemTypeUri(code),
    title: titleOf(status),
    status,
    detail,
    code,
  };
}

/** Answers with a problem document (extension members, such as a tool's own `error`, allowed). */
export function sendProblem(res: Response, problem: Problem & { error?: unknown }): Response {
  return res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

/** What body-parser and Express report, reduced to a stable code and a detail that echoes nothing. */
const EXPRESS_ERRORS: Record<string, { code: string; detail: string }> = {
  'entity.parse.failed': { code: 'malformed_json', detail: 'The JSON body is malformed' },
  'entity.too.large': { code: 'payload_too_large', detail: 'The request body is too large' },
  'entity.verify.failed': { code: 'bad_request', detail: 'The request body was refused' },
  'encoding.unsupported': {
    code: 'unsupported_media_type',
    detail: 'The content encoding is not supported',
  },
  'charset.unsupported': { code: 'unsupported_media_type', detail: 'The charset is not supported' },
  'request.aborted': { code: 'bad_request', detail: 'The request was aborted' },
  'request.size.invalid': { code: 'bad_request', detail: 'The request size does not match' },
  'stream.encoding.set': { code: 'bad_request', detail: 'The request body could not be read' },
  'parameters.too.many': { code: 'payload_too_large', detail: 'The body has too many parameters' },
};

/**
 * One error shape for every route: application/problem+json with a stable code. Unknown errors
 * become a bare 500 without message or stack, and are logged in full instead. Framework errors
 * (unknown route, malformed JSON, body too large, bad percent-encoding, throttling, validation)
 * are mapped to codes here so no route has to care.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const problem = this.problemFor(exception);
    if (res.headersSent) {
      // Too late for a problem document; end the response so the client is not left waiting.
      if (!res.writableEnded) res.end();
      return;
    }
    const headers =
      exception instanceof ApiError
        ? exception.headers
        : problem.status === 503
          ? { 'Retry-After': '2' }
          : {};
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    sendProblem(res, problem);
  }

  private problemFor(exception: unknown): Problem {
    if (exception instanceof ApiError) {
      return problemOf(exception.getStatus(), exception.code, exception.message);
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status >= 500) {
        // Its message is for operators (a failed health check, a framework fault), not clients.
        this.logger.warn({ err: exception }, 'server error');
        return problemOf(status, CODE_BY_STATUS[status] ?? 'internal_error', titleOf(status));
      }
      const known = expressError(exception.cause);
      if (known) return problemOf(status, known.code, known.detail);
      if (exception instanceof NotFoundException && isRouterNotFound(exception)) {
        return problemOf(404, 'not_found', 'No such route');
      }
      if (exception.cause instanceof URIError) {
        return problemOf(400, 'bad_request', 'The URL is not valid percent-encoding');
      }
      return problemOf(status, CODE_BY_STATUS[status] ?? 'error', detailOf(exception));
    }
    const known = expressError(exception);
    if (known && isClientStatus(exception)) {
      return problemOf(exception.status, known.code, known.detail);
    }
    if (isDatabaseUnavailable(exception)) {
      // Our own database is away (a restart, a failover): retryable, and said so.
      this.logger.warn({ err: exception }, 'database unavailable');
      return problemOf(
        503,
        'service_unavailable',
        'The service is briefly unavailable; retry shortly',
      );
    }
    this.logger.error({ err: exception }, 'unhandled error');
    return problemOf(500, 'internal_error', 'An unexpected error occurred');
  }
}

function detailOf(exception: HttpException): string {
  const body = exception.getResponse();
  const message =
    typeof body === 'object' && body !== null && 'message' in body
      ? body.message
      : exception.message;
  const detail = Array.isArray(message) ? message.join('; ') : String(message);
  // Details may quote client input; a bounded length keeps a hostile request from echoing megabytes.
  return detail.length > 500 ? `${detail.slice(0, 500)}…` : detail;
}

/** Nest's own 404 for an unmatched route says `Cannot GET /path`, echoing the path. */
function isRouterNotFound(exception: NotFoundException): boolean {
  return /^Cannot [A-Z]+ /.test(exception.message);
}

function expressError(e: unknown): { code: string; detail: string } | undefined {
  if (typeof e !== 'object' || e === null || !('type' in e)) return undefined;
  return typeof e.type === 'string' ? EXPRESS_ERRORS[e.type] : undefined;
}

function isClientStatus(e: unknown): e is { status: number } {
  const status = (e as { status?: unknown }).status;
  return typeof status === 'number' && status >= 400 && status < 500;
}
