import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiError } from '../common/problem';
import { AuthGuard, RequireScopes, type AuthedRequest } from './auth.guard';
import {
  AuthUnavailableError,
  InvalidTokenError,
  type AuthService,
  type Principal,
} from './auth.service';

class Routes {
  @RequireScopes('voices:read') read() {}
  @RequireScopes('voices:write') write() {}
  @RequireScopes('admin') admin() {}
  undeclared() {}
}

/** Tokens carry their own user and scopes, base64url-encoded: `alice|voices:read admin`. */
const fakeAuth = {
  verifiedBefore: (_token: string): Principal | undefined => undefined,
  verify: (token: string): Promise<Principal> => {
    const decoded = Buffer.from(token, 'base64url').toString();
    if (decoded === 'down') return Promise.reject(new AuthUnavailableError('jwks down'));
    const [userId, scope] = decoded.split('|');
    if (!scope && scope !== '') return Promise.reject(new InvalidTokenError('bad'));
    return Promise.resolve({ userId, scopes: new Set(scope.split(' ').filter(Boolean)) });
  },
} as AuthService;

function contextFor(handler: keyof Routes, path: string, authorization?: string) {
  const req = { url: path, headers: { authorization } } as unknown as AuthedRequest;
  const context = {
    getType: () => 'http',
    getHandler: () => Routes.prototype[handler],
    getClass: () => Routes,
    switchToHttp: () => ({ getRequest: () => req }),
  } as unknown as ExecutionContext;
  return { req, context };
}

const guard = new AuthGuard(fakeAuth, new Reflector());

async function outcome(handler: keyof Routes, token?: string, path = '/v1/voices') {
  const { req, context } = contextFor(
    handler,
    path,
    token === undefined ? undefined : `Bearer ${Buffer.from(token).toString('base64url')}`,
  );
  try {
    await guard.canActivate(context); // a refusal may be thrown at once or come as a rejection
    return { status: 200, user: req.principal?.userId };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { status: err.getStatus(), code: err.code };
  }
}

describe('AuthGuard', () => {
  it('lets a token with the route scope through and sets the principal', async () => {
    expect(await outcome('read', 'alice|voices:read')).toEqual({
      status: 200,
      user: 'alice',
    });
  });

  it('answers 401 without a token, with a malformed header, or with a bad token', async () => {
    expect(await outcome('read')).toMatchObject({ status: 401, code: 'unauthorized' });
    for (const header of ['Basic abc', 'Bearer', 'Bearer a b', 'Bearer <script>', 'bearer']) {
      const { context } = contextFor('read', '/v1/voices', header);
      await expect(async () => guard.canActivate(context)).rejects.toMatchObject({
        code: 'unauthorized',
      });
    }
    expect(await outcome('read', 'no-separator')).toMatchObject({ status: 401 });
  });

  it('answers 403 when the scope is missing, and admin implies every scope', async () => {
    expect(await outcome('write', 'bob|voices:read')).toMatchObject({
      status: 403,
      code: 'forbidden',
    });
    expect(await outcome('admin', 'bob|voices:read voices:write')).toMatchObject({ status: 403 });
    expect(await outcome('admin', 'root|admin')).toMatchObject({ status: 200 });
    expect(await outcome('write', 'root|admin')).toMatchObject({ status: 200 });
    expect(await outcome('read', 'eve|')).toMatchObject({ status: 403 });
    // Scopes are exact words, not prefixes.
    expect(await outcome('admin', 'eve|administrator voices:admin')).toMatchObject({
      status: 403,
    });
  });

  it('treats an API route that declares no scopes as admin-only, and others as public', async () => {
    expect(await outcome('undeclared', undefined, '/v1/anything')).toMatchObject({ status: 401 });
    expect(await outcome('undeclared', 'bob|voices:read voices:write', '/v1/x')).toMatchObject({
      status: 403,
    });
    expect(await outcome('undeclared', 'root|admin', '/v1/x')).toMatchObject({ status: 200 });
    expect(await outcome('undeclared', undefined, '/health/live')).toMatchObject({ status: 200 });
  });

  it('answers 503 when the token keys cannot be fetched, so clients keep their token', async () => {
    expect(await outcome('read', 'down')).toMatchObject({ status: 503, code: 'auth_unavailable' });
  });
});
