import {
  ArgumentsHost,
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  NotFoundException,
  type ExceptionFilter,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
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

/** A Fastify reply, or the Node response under it (for answers sent from a raw hook). */
export type ProblemResponse = FastifyReply | ServerResponse;

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** Answers with a problem document (extension members, such as a tool's own `error`, allowed). */
export function sendProblem(res: ProblemResponse, problem: Problem & { error?: unknown }): void {
  const body = JSON.stringify(problem);
  if (!isReply(res)) {
    res.statusCode = problem.status;
    res.setHeader('Content-Type', PROBLEM_TYPE);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
    return;
  }
  void res.status(problem.status).type(PROBLEM_TYPE).send(body);
}

function isReply(res: ProblemResponse): res is FastifyReply {
  return 'raw' in res;
}

/**
 * What Fastify's body parsing and router report (by FastifyError code, or the 400 its JSON parser
 * gives a SyntaxError), reduced to a stable code and a detail that echoes nothing.
 */
const FRAMEWORK_ERRORS: Record<string, { code: string; detail: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'malformed_json', detail: 'The JSON body is malformed' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'malformed_json', detail: 'The JSON body is malformed' },
  SyntaxError: { code: 'malformed_json', detail: 'The JSON body is malformed' },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: 'payload_too_large',
    detail: 'The request body is too large',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'unsupported_media_type',
    detail: 'The content type is not supported',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'bad_request',
    detail: 'The request size does not match',
  },
  FST_ERR_BAD_URL: { code: 'bad_request', detail: 'The URL is not valid percent-encoding' },
};

/** The problem for an error Fastify's router raises before any hook or handler (a malformed URL). */
export function frameworkProblem(error: { statusCode?: number; code?: string }): Problem {
  const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 400;
  const known = frameworkError(error);
  return known
    ? problemOf(status, known.code, known.detail)
    : problemOf(status, codeForStatus(status), titleOf(status));
}

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
    const res = host.switchToHttp().getResponse<ProblemResponse>();
    const problem = this.problemFor(exception);
    const raw = isReply(res) ? res.raw : res;
    if (raw.headersSent || (isReply(res) && res.sent)) {
      // Too late for a problem document; end the response so the client is not left waiting.
      if (!raw.writableEnded) raw.end();
      return;
    }
    const headers =
      exception instanceof ApiError
        ? exception.headers
        : problem.status === 503
          ? { 'Retry-After': '2' }
          : {};
    for (const [k, v] of Object.entries(headers)) {
      if (isReply(res)) void res.header(k, v);
      else res.setHeader(k, v);
    }
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
      const known = frameworkError(exception.cause);
      if (known) return problemOf(status, known.code, known.detail);
      if (exception instanceof NotFoundException && isRouterNotFound(exception)) {
        return problemOf(404, 'not_found', 'No such route');
      }
      if (exception.cause instanceof URIError) {
        return problemOf(400, 'bad_request', 'The URL is not valid percent-encoding');
      }
      return problemOf(status, CODE_BY_STATUS[status] ?? 'error', detailOf(exception));
    }
    const known = frameworkError(exception);
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

function frameworkError(e: unknown): { code: string; detail: string } | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  if ('code' in e && typeof e.code === 'string' && e.code in FRAMEWORK_ERRORS)
    return FRAMEWORK_ERRORS[e.code];
  return e instanceof SyntaxError ? FRAMEWORK_ERRORS.SyntaxError : undefined;
}

function isClientStatus(e: unknown): e is { status: number } {
  const status = (e as { status?: unknown }).status;
  return typeof status === 'number' && status >= 400 && status < 500;
}
