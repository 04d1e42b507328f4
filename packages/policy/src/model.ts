import type { HeaderMutationTable, RateLimitKey } from '@apx/core';
import type { CondExpr } from './cel/ir.js';

/** A validated apx/v1 policy: what the compiler and the reference evaluator both read. */
export interface Policy {
  name: string;
  version: string;
  compat: 'backward' | 'forward' | 'full' | 'none';
  description: string;
  routes: Route[];
  apiKeys: ApiKeyAuth | null;
  jwt: JwtAuth | null;
  ip: { allow: Cidr[]; deny: Cidr[] };
  rules: Rule[];
  rateLimits: RateLimit[];
  maxBodyBytes: number | null;
  headers: HeaderMutationTable;
  defaultEffect: Effect;
}

export type Effect = 'allow' | 'deny';
export type RouteAuth = 'required' | 'optional' | 'none';

export interface Route {
  name: string;
  /** Lowercase; `*.example.com` matches any subdomain (not the apex). Empty: any host. */
  hosts: string[];
  /** Patterns with `*` (one non-empty segment) and a trailing `**` (any depth). */
  paths: string[];
  /** Uppercase; empty: any method. */
  methods: string[];
  auth: RouteAuth;
}

export interface ApiKey {
  id: string;
  /** Lowercase hex SHA-256 of the key. */
  sha256: string;
  tenant: string;
  plan: string;
  scopes: string[];
  roles: string[];
}

export interface ApiKeyAuth {
  /** Lowercase header name. */
  header: string;
  keys: ApiKey[];
}

export interface JwtAuth {
  issuer: string;
  audiences: string[];
  /** Where the host fetches keys; the policy never reads it, the host does. */
  jwksUri: string;
  requiredScopes: string[];
}

export interface Cidr {
  text: string;
  family: 4 | 6;
  /** 16 bytes, host bits zero. */
  bytes: Uint8Array;
  bits: number;
}

export interface Rule {
  name: string;
  when: string;
  condition: CondExpr;
  /** Route names the rule is limited to; empty: every route. */
  routes: string[];
  effect: Effect;
  status: number;
  reason: string;
}

export interface RateLimit {
  name: string;
  key: RateLimitKey;
  limit: number;
  windowSeconds: number;
  burst: number;
  routes: string[];
}
