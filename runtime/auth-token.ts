/**
 * Token auth (AML `token_auth_enabled`): short-lived JWTs a client gets from the app (`GET /api/services/{name}/token`)
 * and sends as `Authorization: Bearer <token>`. Signed and verified with `jose`, HS256 with a per-service secret:
 * the issuer (the app) and the verifiers (the local front, the replicas on AKS) are one trust domain and already share
 * a secret channel (the keys table, the mounted keys Secret), so a symmetric key needs no key-pair management and
 * rotates like the keys. Only HS256 is accepted (no `none`, no algorithm switch), with this service's audience and
 * the app's issuer; an expired token is refused (no clock tolerance beyond `CLOCK_TOLERANCE_SECONDS`).
 */
import { createHash } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';

export const TOKEN_ISSUER = 'model-deploy-flow';
export const TOKEN_ALGORITHM = 'HS256';
/** Lifetime of a token and when a client should get a new one (AML: refresh after half the lifetime). */
export const TOKEN_LIFETIME_SECONDS = 60 * 60;
export const TOKEN_REFRESH_AFTER_SECONDS = 30 * 60;
export const CLOCK_TOLERANCE_SECONDS = 5;
/** A Bearer value longer than this is refused before any parsing. */
export const MAX_TOKEN_CHARS = 4096;

export const tokenAudience = (serviceName: string) => `service:${serviceName}`;

function secretBytes(secret: string): Uint8Array {
  // A stored secret is a random base64url string; hashing gives the 256-bit HMAC key whatever its length.
  return createHash('sha256').update(secret, 'utf8').digest();
}

export interface IssuedToken {
  accessToken: string;
  tokenType: 'Bearer';
  /** Unix seconds. */
  expiryOn: number;
  refreshAfter: number;
}

export async function issueToken(serviceName: string, secret: string, nowSeconds = Math.floor(Date.now() / 1000)): Promise<IssuedToken> {
  const expiryOn = nowSeconds + TOKEN_LIFETIME_SECONDS;
  const accessToken = await new SignJWT({})
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(tokenAudience(serviceName))
    .setSubject(serviceName)
    .setIssuedAt(nowSeconds)
    .setNotBefore(nowSeconds - CLOCK_TOLERANCE_SECONDS)
    .setExpirationTime(expiryOn)
    .sign(secretBytes(secret));
  return { accessToken, tokenType: 'Bearer', expiryOn, refreshAfter: nowSeconds + TOKEN_REFRESH_AFTER_SECONDS };
}

/** `(Authorization header) → valid token of this service?` Never throws. */
export function makeTokenVerifier(serviceName: string, secret: string): (header: string | undefined) => Promise<boolean> {
  const key = secretBytes(secret);
  const audience = tokenAudience(serviceName);
  return async (header) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m || m[1].length > MAX_TOKEN_CHARS) return false;
    try {
      await jwtVerify(m[1], key, { algorithms: [TOKEN_ALGORITHM], issuer: TOKEN_ISSUER, audience, clockTolerance: CLOCK_TOLERANCE_SECONDS, requiredClaims: ['exp', 'iat'] });
      return true;
    } catch {
      return false;
    }
  };
}
