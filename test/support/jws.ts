import {
  createHmac,
  generateKeyPairSync,
  sign,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * JWTs signed with node:crypto the way an identity provider would, so suites test the service's
 * verification without sharing its JWT library, plus a tiny JWKS server to publish the keys.
 */

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  /** The public half as a JWK, as a JWKS publishes it. */
  jwk: JsonWebKey & { kid: string; alg: string; use: string };
}

export function generateSigningKey(alg: 'RS256' | 'ES256', kid: string): SigningKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    kid,
    alg,
    privateKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

export type Claims = Record<string, unknown>;

/** Standard claims for `sub`, valid for an hour from now; override or drop (undefined) any. */
export function claims(sub: string, extra: Claims = {}): Claims {
  const now = Math.floor(Date.now() / 1000);
  const all: Claims = {
    sub,
    scope: 'voices:read voices:write',
    iat: now,
    exp: now + 3600,
    ...extra,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

/** RS256 / ES256 (raw r||s signature, as JWS requires) with the key's kid in the header. */
export function signJwt(key: SigningKey, payload: Claims, header: Claims = {}): string {
  const input = `${b64({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })}.${b64(payload)}`;
  const signature =
    key.alg === 'RS256'
      ? sign('sha256', Buffer.from(input), key.privateKey)
      : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

export function signHs256(secret: string | Buffer, payload: Claims, header: Claims = {}): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT', ...header })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** `alg: none`: no signature at all. */
export function unsigned(payload: Claims): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

export interface JwksServer {
  url: string;
  /** Requests served so far. */
  hits(): number;
  setKeys(keys: SigningKey[]): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: SigningKey[]): Promise<JwksServer> {
  let current = keys;
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: current.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    hits: () => hits,
    setKeys: (k) => (current = k),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
