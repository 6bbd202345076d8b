import { Injectable } from '@nestjs/common';
import {
  createRemoteJWKSet,
  errors,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { LRUCache } from 'lru-cache';
import { AppConfig } from '../config/config.module';

export const SCOPES = ['voices:read', 'voices:write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  userId: string;
  scopes: ReadonlySet<string>;
}

/** The token is not acceptable: answered 401. */
export class InvalidTokenError extends Error {}

/** The identity provider's key set could not be read: answered 503, the token may be fine. */
export class AuthUnavailableError extends Error {}

/** Far above any real JWT; refusing bigger ones bounds the work a hostile header can cause. */
export const MAX_TOKEN_LENGTH = 8192;
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * Verified tokens are remembered so a client's repeated requests skip the signature check (an
 * HMAC or RSA/ECDSA verify and the claim checks, the largest cost of a cheap request). Bounded in
 * count; only tokens that verified get in, so a flood of forged tokens cannot fill it.
 */
const VERIFIED_TOKENS_MAX = 10_000;
/**
 * How long a verified token is trusted without verifying it again (never past its `exp`). A key
 * removed from the identity provider's JWKS (rotation after a compromise) stops being honoured
 * once jose's key-set cache lets go of it, plus at most this long for tokens verified before.
 */
export const VERIFIED_TOKEN_TTL_MS = 60_000;
/** What a JWKS failure may be without the token being at fault. */
const KEY_LOOKUP_TOKEN_ERRORS = [
  errors.JWKSNoMatchingKey,
  errors.JWKSMultipleMatchingKeys,
  errors.JOSENotSupported,
  errors.JWKInvalid,
];

/**
 * Verifies bearer tokens: HS256 with the shared secret, or (when AUTH_JWKS_URL is set, instead of
 * the secret) RS256/ES256 signed by an identity provider's published keys. The accepted algorithms
 * are pinned per mode, so `alg: none` and HS256-with-the-public-key confusion never verify.
 */
@Injectable()
export class AuthService {
  private readonly secret: Uint8Array;
  private readonly jwks: JWTVerifyGetKey | null;
  /** Each entry keeps its own deadline (never past the token's `exp`), checked against Date.now(). */
  private readonly verified = new LRUCache<string, { principal: Principal; until: number }>({
    max: VERIFIED_TOKENS_MAX,
  });

  constructor(private readonly config: AppConfig) {
    this.secret = new TextEncoder().encode(config.AUTH_JWT_SECRET);
    this.jwks = config.AUTH_JWKS_URL ? guardedKeySet(new URL(config.AUTH_JWKS_URL)) : null;
  }

  /**
   * The principal of a token that verified within the last VERIFIED_TOKEN_TTL_MS and has not
   * expired, or undefined: the caller then verifies it. The key is the whole token, signature
   * included, so a token differing from a verified one in any byte is verified on its own.
   */
  verifiedBefore(token: string): Principal | undefined {
    return this.remembered(token, Date.now());
  }

  private remembered(token: string, now: number): Principal | undefined {
    const entry = this.verified.get(token);
    if (!entry) return undefined;
    if (entry.until > now) return entry.principal;
    this.verified.delete(token);
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('token too long');
    const now = Date.now();
    const known = this.remembered(token, now);
    if (known) return known;
    const options: JWTVerifyOptions = {
      issuer: this.config.AUTH_ISSUER,
      audience: this.config.AUTH_AUDIENCE,
      // A token without an expiry would be valid forever once leaked.
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      // A long-lived token stays dangerous after a leak however far off its exp is; jose then
      // also refuses a token without iat.
      ...(this.config.AUTH_MAX_TOKEN_AGE_SECONDS
        ? { maxTokenAge: this.config.AUTH_MAX_TOKEN_AGE_SECONDS }
        : {}),
    };
    let payload: JWTPayload;
    try {
      ({ payload } = this.jwks
        ? await jwtVerify(token, this.jwks, { ...options, algorithms: ['RS256', 'ES256'] })
        : await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] }));
    } catch (err) {
      if (err instanceof AuthUnavailableError) throw err;
      throw new InvalidTokenError(err instanceof Error ? err.message : 'invalid token');
    }
    const principal = principalOf(payload);
    // `exp` is a required claim, so jose has checked it is a number.
    const exp = (payload.exp as number) * 1000;
    const until = Math.min(exp, now + VERIFIED_TOKEN_TTL_MS);
    if (until > now) this.verified.set(token, { principal, until });
    return principal;
  }
}

/**
 * The remote key set, with its failures split in two: a key that does not match is the token's
 * fault (401), an unreachable or broken key set is ours (503), so clients do not throw away good
 * tokens during an identity-provider outage.
 */
function guardedKeySet(url: URL): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(url, { timeoutDuration: 3_000, cooldownDuration: 30_000 });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (KEY_LOOKUP_TOKEN_ERRORS.some((type) => err instanceof type)) throw err;
      throw new AuthUnavailableError(err instanceof Error ? err.message : 'JWKS unavailable');
    }
  };
}

// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const USABLE_SUB = /^[^\u0000-\u001f\u007f]{1,200}$/;

export function principalOf(payload: JWTPayload): Principal {
  if (typeof payload.sub !== 'string' || !USABLE_SUB.test(payload.sub)) {
    throw new InvalidTokenError('token has no usable sub');
  }
  return { userId: payload.sub, scopes: new Set(scopesOf(payload)) };
}

/** `scope` is a space-separated string (RFC 8693); some providers send `scp` as an array. */
function scopesOf(payload: JWTPayload): string[] {
  const raw = payload.scope ?? payload.scp;
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === 'string');
  return [];
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
