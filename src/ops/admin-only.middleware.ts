import type { NextFunction, Request, Response } from 'express';
import type { AuthService, Principal } from '../auth/auth.service';
import { codeForStatus, problemOf, sendProblem } from '../common/problem';

/**
 * Express middleware for tools mounted outside Nest's routing (Bull Board): the same bearer
 * token and `admin` scope as the admin routes, answered with the same problem documents; it sets
 * `req.principal` as the AuthGuard does.
 */
export function adminOnly(auth: AuthService) {
  return (req: Request & { principal?: Principal }, res: Response, next: NextFunction): void => {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(req.headers.authorization ?? '');
    if (!match) return refuse(res, 401, 'unauthorized', 'A bearer token is required');
    auth.verify(match[1]).then(
      (principal) => {
        if (!principal.scopes.has('admin'))
          return refuse(res, 403, 'forbidden', 'Missing scope: admin');
        // For the rate limit behind it, as the AuthGuard does for Nest's routes.
        req.principal = principal;
        next();
      },
      () => refuse(res, 401, 'unauthorized', 'The bearer token is invalid or expired'),
    );
  };
}

function refuse(res: Response, status: number, code: string, detail: string): void {
  if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  sendProblem(res, problemOf(status, code, detail));
}

/**
 * Turns the JSON errors of a tool mounted outside Nest (Bull Board answers `{"error": {...}}`
 * with 400 or 404) into our problem documents, so every error of the service has one shape. The
 * tool's own `error` member stays, as a problem document's extension, for the tool's UI.
 */
export function problemErrors() {
  return (_req: Request, res: Response, next: NextFunction): void => {
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      if (res.statusCode < 400) return json(body);
      const problem = problemOf(
        res.statusCode,
        codeForStatus(res.statusCode),
        'The queue board refused the request',
      );
      const error =
        typeof body === 'object' && body !== null && 'error' in body ? { error: body.error } : {};
      return sendProblem(res, { ...problem, ...error });
    };
    next();
  };
}
