import { Injectable } from '@nestjs/common';
import {
  createRemoteJWKSet,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { AppConfig } from '../config/config.module';

export const SCOPES = ['voices:read', 'voices:write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  userId: string;
  scopes: ReadonlySet<string>;
}

/** Verifies bearer tokens: HS256 with the shared secret, or RS256/ES256 from a JWKS when set. */
@Injectable()
export class AuthService {
  private readonly secret: Uint8Array;
  private readonly jwks: JWTVerifyGetKey | null;

  constructor(private readonly config: AppConfig) {
    this.secret = new TextEncoder().encode(config.AUTH_JWT_SECRET);
    this.jwks = config.AUTH_JWKS_URL ? createRemoteJWKSet(new URL(config.AUTH_JWKS_URL)) : null;
  }

  async verify(token: string): Promise<Principal> {
    const options = { issuer: this.config.AUTH_ISSUER, audience: this.config.AUTH_AUDIENCE };
    const { payload } = this.jwks
      ? await jwtVerify(token, this.jwks, { ...options, algorithms: ['RS256', 'ES256'] })
      : await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] });
    return principalOf(payload);
  }
}

function principalOf(payload: JWTPayload): Principal {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 200) {
    throw new Error('token has no usable sub');
  }
  const scope = typeof payload.scope === 'string' ? payload.scope : '';
  return { userId: payload.sub, scopes: new Set(scope.split(' ').filter(Boolean)) };
}

/** Signs a development token; also used by tests. */
export async function signDevToken(
  secret: string,
  userId: string,
  scope = 'voices:read voices:write',
  expiresIn = '12h',
): Promise<string> {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
