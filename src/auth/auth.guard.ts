import {
  CanActivate,
  createParamDecorator,
  ExecutionContext,
  Injectable,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ApiError } from '../common/problem';
import { AuthService, type Principal, type Scope } from './auth.service';

const SCOPES_KEY = 'required_scopes';
/** The scopes a route needs; every /v1 route declares them. */
export const RequireScopes = (...scopes: Scope[]) => SetMetadata(SCOPES_KEY, scopes);

type AuthedRequest = Request & { principal?: Principal };

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly auth: AuthService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const scopes = this.reflector.getAllAndOverride<Scope[] | undefined>(SCOPES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!scopes) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header);
    if (!match) throw new ApiError(401, 'unauthorized', 'A bearer token is required');
    let principal: Principal;
    try {
      principal = await this.auth.verify(match[1]);
    } catch {
      throw new ApiError(401, 'unauthorized', 'The bearer token is invalid or expired');
    }
    // admin implies every other scope.
    const missing = scopes.filter(
      (s) => !principal.scopes.has(s) && !principal.scopes.has('admin'),
    );
    if (missing.length) {
      throw new ApiError(403, 'forbidden', `Missing scope: ${missing.join(', ')}`);
    }
    req.principal = principal;
    return true;
  }
}

export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const req = ctx.switchToHttp().getRequest<AuthedRequest>();
  if (!req.principal) throw new ApiError(401, 'unauthorized', 'A bearer token is required');
  return req.principal;
});
