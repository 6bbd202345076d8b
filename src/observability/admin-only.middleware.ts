import type { NextFunction, Request, Response } from 'express';
import type { AuthService } from '../auth/auth.service';
import { problemOf } from '../common/problem';

/**
 * Express middleware for tools mounted outside Nest's routing (Bull Board): the same bearer
 * token and `admin` scope as the admin routes, answered with the same problem documents.
 */
export function adminOnly(auth: AuthService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(req.headers.authorization ?? '');
    if (!match) return refuse(res, 401, 'unauthorized', 'A bearer token is required');
    auth.verify(match[1]).then(
      (principal) => {
        if (principal.scopes.has('admin')) next();
        else refuse(res, 403, 'forbidden', 'Missing scope: admin');
      },
      () => refuse(res, 401, 'unauthorized', 'The bearer token is invalid or expired'),
    );
  };
}

function refuse(res: Response, status: number, code: string, detail: string): void {
  if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify(problemOf(status, code, detail)));
}
