import {
  CanActivate,
  createParamDecorator,
  ExecutionContext,
  Injectable,
  Logger,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../common/problem';
import { AuthService, AuthUnavailableError, type Principal, type Scope } from './auth.service';

const SCOPES_KEY = 'required_scopes';
/** The scopes a route needs; every /v1 route declares them. */
export const RequireScopes = (...scopes: Scope[]) => SetMetadata(SCOPES_KEY, scopes);

export type AuthedRequest = FastifyRequest & { principal?: Principal };

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const API_PATH = /^\/v\d+(\/|$)/;

/**
 * The global guard: a bearer token on every route that declares scopes, and the scopes it names
 * (`admin` implies the others). A /v1 route that forgot to declare any is treated as admin-only
 * rather than public, so an omission fails closed.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger(AuthGuard.name);

  constructor(
    private readonly auth: AuthService,
    private readonly reflector: Reflector,
  ) {}

  /** Synchronous for a token verified moments ago, as most requests carry. */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    let scopes = this.reflector.getAllAndOverride<Scope[] | undefined>(SCOPES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!scopes) {
      if (!API_PATH.test(req.url)) return true;
      this.logger.error(
        { route: `${context.getClass().name}.${context.getHandler().name}` },
        'API route declares no scopes; treating it as admin-only',
      );
      scopes = ['admin'];
    }
    const match = BEARER.exec(req.headers.authorization ?? '');
    if (!match) throw new ApiError(401, 'unauthorized', 'A bearer token is required', challenge());
    const required = scopes;
    const known = this.auth.verifiedBefore(match[1]);
    if (known) return admit(req, required, known);
    return this.auth.verify(match[1]).then(
      (principal) => admit(req, required, principal),
      (err: unknown) => {
        throw this.refusal(err);
      },
    );
  }

  private refusal(err: unknown): ApiError {
    if (err instanceof AuthUnavailableError) {
      this.logger.warn({ reason: err.message }, 'token keys unavailable');
      return new ApiError(503, 'auth_unavailable', 'Tokens cannot be verified right now', {
        'Retry-After': '5',
      });
    }
    return new ApiError(
      401,
      'unauthorized',
      'The bearer token is invalid or expired',
      challenge('invalid_token'),
    );
  }
}

/** The principal goes on the request if it holds every scope the route needs (admin: all). */
function admit(req: AuthedRequest, scopes: readonly Scope[], principal: Principal): true {
  if (!principal.scopes.has('admin')) {
    const missing = scopes.filter((s) => !principal.scopes.has(s));
    if (missing.length) {
      throw new ApiError(403, 'forbidden', `Missing scope: ${missing.join(', ')}`);
    }
  }
  req.principal = principal;
  return true;
}

/** RFC 6750's challenge, so clients can tell a missing token from a rejected one. */
function challenge(error?: string): Record<string, string> {
  return { 'WWW-Authenticate': error ? `Bearer error="${error}"` : 'Bearer' };
}

export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const req = ctx.switchToHttp().getRequest<AuthedRequest>();
  if (!req.principal) throw new ApiError(401, 'unauthorized', 'A bearer token is required');
  return req.principal;
});
