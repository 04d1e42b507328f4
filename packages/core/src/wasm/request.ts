/**
 * What the host hands to a policy, after the host-side work of DESIGN.md §7: the worker
 * strips the port from `host` and the query from `path`, lowercases header names, checks
 * the JWT's signature and expiry against the JWKS, and passes only verified claims.
 */
export interface PolicyRequest {
  method: string;
  /** Host name without port; compared case-insensitively. */
  host: string;
  /** Path without query string, as received (the worker normalizes it). */
  path: string;
  /** Client address (IPv4 or IPv6 text). */
  ip?: string;
  /** Header values by lowercase name; repeated headers joined with ", ". */
  headers?: Readonly<Record<string, string>>;
  /** Request body size in bytes (Content-Length or counted). */
  bodySize?: number;
  /** The bearer token, after the host checked it: absent when none was presented. */
  jwt?: JwtInput;
}

export type JwtInput = { verified: false } | { verified: true; claims: JwtClaims };

/** The claims the ABI carries; other claims are not visible to policies in ABI v1. */
export interface JwtClaims {
  iss?: string;
  sub?: string;
  aud?: string | readonly string[];
  /** OAuth 2 space-separated scopes. */
  scope?: string;
  /** Scopes as an array (Azure AD, Okta); used when `scope` is absent. */
  scp?: readonly string[];
  roles?: readonly string[];
  tenant?: string;
  plan?: string;
}

/** The claim values a policy sees: one normalization shared by host and reference evaluator. */
export interface NormalizedClaims {
  iss: string;
  sub: string;
  aud: readonly string[];
  scopes: readonly string[];
  roles: readonly string[];
  tenant: string;
  plan: string;
}

const EMPTY: readonly string[] = Object.freeze([]);

export function normalizeClaims(claims: JwtClaims): NormalizedClaims {
  const aud = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? EMPTY);
  const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ').filter((s) => s !== '') : (claims.scp ?? EMPTY);
  return {
    iss: claims.iss ?? '',
    sub: claims.sub ?? '',
    aud,
    scopes,
    roles: claims.roles ?? EMPTY,
    tenant: claims.tenant ?? '',
    plan: claims.plan ?? '',
  };
}

/** Body sizes travel as u32; larger bodies are clamped (every sane limit is far below). */
export const MAX_BODY_SIZE = 0xffffffff;

export function clampBodySize(n: number | undefined): number {
  if (n === undefined || !(n > 0)) return 0;
  return n >= MAX_BODY_SIZE ? MAX_BODY_SIZE : Math.floor(n);
}
