import type { JwtClaims, JwtInput, JwtTable } from '@apx/core';

/** Signature algorithms accepted for bearer tokens: asymmetric only (never `none` or HMAC). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export interface JwtVerifierOptions {
  /** fetch used for the JWKS (tests point it at a local server). Default: global fetch. */
  fetch?: typeof fetch;
  /** Timeout of one JWKS fetch. Default 5 s. */
  timeoutMs?: number;
  /** Clock skew tolerated on exp/nbf, in seconds. Default 30. */
  clockToleranceSeconds?: number;
}

export type JwtVerify = (token: string) => Promise<JwtInput>;

/**
 * The host side of a policy's JWT authentication (DESIGN.md §7): the token's signature is
 * checked against the policy's JWKS (fetched, cached and refreshed by `jose`), with its
 * issuer, audiences, expiry and not-before; the policy then decides on verified claims only.
 * A token that fails any check reaches the policy as "presented but rejected".
 */
export async function createJwtVerifier(table: JwtTable, options: JwtVerifierOptions = {}): Promise<JwtVerify> {
  // jose loads only for policies that authenticate with JWTs.
  const jose = await import('jose');
  const jwks = jose.createRemoteJWKSet(new URL(table.jwksUri), {
    timeoutDuration: options.timeoutMs ?? 5000,
    ...(options.fetch ? { [jose.customFetch]: options.fetch } : {}),
  });
  const verifyOptions = {
    issuer: table.issuer,
    algorithms: ALGORITHMS,
    clockTolerance: options.clockToleranceSeconds ?? 30,
    ...(table.audiences.length > 0 ? { audience: [...table.audiences] } : {}),
  };
  return async (token) => {
    try {
      const { payload } = await jose.jwtVerify(token, jwks, verifyOptions);
      return { verified: true, claims: claimsOf(payload as Record<string, unknown>) };
    } catch {
      return { verified: false };
    }
  };
}

/** Only the claims the ABI carries, with the types it expects; others are dropped. */
function claimsOf(p: Record<string, unknown>): JwtClaims {
  const claims: JwtClaims = {};
  const strings = (v: unknown) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  if (typeof p.iss === 'string') claims.iss = p.iss;
  if (typeof p.sub === 'string') claims.sub = p.sub;
  if (typeof p.aud === 'string') claims.aud = p.aud;
  else if (strings(p.aud)) claims.aud = strings(p.aud) as string[];
  if (typeof p.scope === 'string') claims.scope = p.scope;
  if (strings(p.scp)) claims.scp = strings(p.scp) as string[];
  if (strings(p.roles)) claims.roles = strings(p.roles) as string[];
  if (typeof p.tenant === 'string') claims.tenant = p.tenant;
  if (typeof p.plan === 'string') claims.plan = p.plan;
  return claims;
}

/** The bearer token of an Authorization header (any case), or undefined. */
export function bearerToken(headers: unknown): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (name.toLowerCase() === 'authorization' && typeof value === 'string') {
      const m = /^Bearer\s+(\S+)$/i.exec(value.trim());
      return m?.[1];
    }
  }
  return undefined;
}
