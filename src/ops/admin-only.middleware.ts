import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AuthedRequest } from '../auth/auth.guard';
import type { AuthService } from '../auth/auth.service';
import { generalBudget, type RateLimiter } from '../auth/rate-limit';
import { ApiError, codeForStatus, problemOf, sendProblem } from '../common/problem';
import { trackHttpRequest } from './http-metrics.middleware';
import type { MetricsService } from './metrics.service';
import { isQueueBoardPath } from './queue-board.constants';

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

/**
 * Fastify hooks for a tool mounted beside Nest's routes (Bull Board), on its paths only: counted
 * like every request, the same bearer token and `admin` scope as the admin routes, the admin's
 * reads or writes budget as on the admin routes, answered with the same problem documents.
 */
export function guardQueueBoard(
  fastify: FastifyInstance,
  deps: { auth: AuthService; limiter: RateLimiter; metrics: MetricsService },
): void {
  // A callback hook, so the requests that are not the board's pass without a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    if (!isQueueBoardPath(request.url)) return done();
    trackHttpRequest(deps.metrics, request, reply);
    admit(request as AuthedRequest, reply, deps).then((admitted) => {
      // A refused request has its answer sent; the chain stops there.
      if (admitted) done();
    }, done);
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    done(null, problemErrors(request.url, reply, payload));
  });
}

/** Sets the principal and spends the budget, or answers with the refusal and returns false. */
async function admit(
  req: AuthedRequest,
  reply: FastifyReply,
  deps: { auth: AuthService; limiter: RateLimiter },
): Promise<boolean> {
  const match = BEARER.exec(req.headers.authorization ?? '');
  if (!match) return refuse(reply, 401, 'unauthorized', 'A bearer token is required');
  const principal = await deps.auth.verify(match[1]).catch(() => null);
  if (!principal)
    return refuse(reply, 401, 'unauthorized', 'The bearer token is invalid or expired');
  if (!principal.scopes.has('admin'))
    return refuse(reply, 403, 'forbidden', 'Missing scope: admin');
  // For the rate limit, as the AuthGuard does for Nest's routes.
  req.principal = principal;
  try {
    await deps.limiter.hit(req, reply, generalBudget(req.method));
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
    return refuse(reply, err.getStatus(), err.code, err.message);
  }
  return true;
}

function refuse(reply: FastifyReply, status: number, code: string, detail: string): false {
  if (status === 401) void reply.header('WWW-Authenticate', 'Bearer');
  sendProblem(reply, problemOf(status, code, detail));
  return false;
}

/**
 * Turns the JSON errors of the board (it answers `{"error": {...}}` with 400 or 404) into our
 * problem documents, so every error of the service has one shape. The tool's own `error` member
 * stays, as a problem document's extension, for the tool's UI.
 */
function problemErrors(url: string, reply: FastifyReply, payload: unknown): unknown {
  const status = reply.statusCode;
  if (status < 400 || !isQueueBoardPath(url)) return payload;
  const type = reply.getHeader('content-type');
  if (typeof type !== 'string' || !type.startsWith('application/json')) return payload;
  let error = {};
  try {
    const body: unknown = JSON.parse(String(payload));
    if (typeof body === 'object' && body !== null && 'error' in body) error = { error: body.error };
  } catch {
    // Not JSON after all: the problem goes without the tool's detail.
  }
  const problem = problemOf(status, codeForStatus(status), 'The queue board refused the request');
  void reply.type('application/problem+json; charset=utf-8');
  return JSON.stringify({ ...problem, ...error });
}
