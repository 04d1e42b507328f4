/**
 * APX policy ABI, version 1: the one source of truth for the compiler (which emits modules
 * against it) and the host (which refuses modules that do not match it). docs/abi.md is the
 * prose version of this file; change both together and bump ABI_VERSION on any change.
 *
 * Shape: the module imports one memory (`env.memory`, created by the host with an exact
 * maximum) and exports one function (`decide: [] -> [i32]`). The host writes the request
 * into the request area, calls `decide`, and reads a fixed-size decision record. Everything
 * static (reason strings, route names, header mutations, rate-limit descriptors) lives in
 * the `apx.tables` custom section, which the host reads once at load.
 */
export const ABI_VERSION = 1;

/** Custom section with {policy, version, abi, compiler, sourceSha256} (JSON, UTF-8). */
export const META_SECTION = 'apx.meta';
/** Custom section with the static tables the host needs to render a decision (JSON, UTF-8). */
export const TABLES_SECTION = 'apx.tables';

export const IMPORT_MODULE = 'env';
export const IMPORT_MEMORY = 'memory';
export const EXPORT_DECIDE = 'decide';
/**
 * Added by the host, never by the compiler: the metering import (wasm/meter.ts) a verified
 * module is given before it is compiled. A module that imports from this name is refused.
 */
export const METER_MODULE = 'apx_meter';
export const METER_REFUEL = 'refuel';

/** 64 KiB WebAssembly pages. Page 0 holds the decision and the request; static data follows. */
export const PAGE_BYTES = 65536;
/** Hard cap on the memory a policy may ask for (1 MiB): the host never creates more. */
export const MAX_MEMORY_PAGES = 16;
/** Where the compiler places static data (strings, key hashes, CIDRs): page 1 onwards. */
export const DATA_OFFSET = PAGE_BYTES;

/** `decide` returns this when it wrote a decision; anything else is a malformed decision. */
export const DECIDE_OK = 1;

/** Decision record, 7 little-endian i32 at offset 0 (pointer 0 is therefore never a string). */
export const DECISION = {
  effect: 0, // 0 deny, 1 allow
  status: 4, // HTTP status
  reason: 8, // index into tables.reasons
  route: 12, // index into tables.routes, -1 when no route matched
  rule: 16, // index into tables.rules, -1 when no rule decided
  identityKind: 20, // IdentityKind
  apiKey: 24, // index into tables.apiKeys, -1 unless identityKind is API_KEY
} as const;
export const DECISION_BYTES = 28;

export const IdentityKind = { NONE: 0, API_KEY: 1, JWT: 2 } as const;
export type IdentityKind = (typeof IdentityKind)[keyof typeof IdentityKind];

export const JwtState = { ABSENT: 0, VERIFIED: 1, REJECTED: 2 } as const;

/**
 * Request area. A string is a (ptr u32, len u32) pair of UTF-8 bytes; ptr 0 means absent.
 * A string list is a ptr to [count u32][(ptr u32, len u32) × count]; ptr 0 means empty.
 * All offsets are absolute addresses in linear memory.
 */
export const REQUEST = {
  method: 64,
  host: 72,
  path: 80,
  ip: 88, // the client address as text, for CEL's request.ip
  ipFamily: 96, // 0 absent or unparsable, 4, 6 (IPv4-mapped IPv6 is reported as 4)
  ipBytes: 100, // 16 bytes; IPv4 in the first 4
  bodySize: 116, // u32, clamped to 0xffffffff
  apiKeyPresent: 120, // 1 when the policy's API-key header was present
  apiKeySha256: 124, // 32 bytes: SHA-256 of the presented key, computed by the host
  jwtState: 156, // JwtState: the host checked the token's signature and expiry
  jwtIss: 160,
  jwtSub: 168,
  jwtTenant: 176,
  jwtPlan: 184,
  jwtAud: 192, // list
  jwtScopes: 196, // list
  jwtRoles: 200, // list
  headerSlots: 204, // (ptr, len) × tables.headerSlots.length, in that order; ptr 0 = absent
} as const;
/** At most this many distinct header names may be referenced by one policy. */
export const MAX_HEADER_SLOTS = 32;
/** Variable-length request data (strings, lists) lives in [REQUEST_VAR_OFFSET, REQUEST_END). */
export const REQUEST_VAR_OFFSET = 512;
export const REQUEST_END = PAGE_BYTES;

/** The `apx.meta` custom section. */
export interface PolicyMeta {
  policy: string;
  version: string;
  abi: number;
  compiler: string;
  /** Lowercase hex SHA-256 of the canonical JSON of the validated policy. */
  sourceSha256: string;
}

export interface HeaderMutations {
  set: Readonly<Record<string, string>>;
  remove: readonly string[];
}

export interface HeaderMutationTable {
  request: HeaderMutations;
  response: HeaderMutations;
}

export type RateLimitKey = 'identity.tenant' | 'identity.id' | 'request.ip';

export interface RateLimitDescriptor {
  name: string;
  key: RateLimitKey;
  limit: number;
  windowSeconds: number;
  burst: number;
  /** Route indexes the limit applies to; empty means every route. */
  routes: readonly number[];
}

export interface JwtTable {
  issuer: string;
  jwksUri: string;
  audiences: readonly string[];
}

/** The `apx.tables` custom section. */
export interface PolicyTables {
  reasons: readonly string[];
  routes: readonly { name: string }[];
  rules: readonly { name: string }[];
  apiKeys: readonly { id: string; tenant: string; plan: string }[];
  /** Lowercase header carrying the API key, or null when the policy has no API keys. */
  apiKeyHeader: string | null;
  /**
   * Where the host verifies bearer tokens for this policy (JWKS URL, expected issuer and
   * audiences), or null when the policy does not use JWTs (the host then passes no claims).
   */
  jwt: JwtTable | null;
  /** Lowercase header names the policy reads, in slot order. */
  headerSlots: readonly string[];
  /** Header mutations of an allowed request. */
  headers: HeaderMutationTable;
  rateLimits: readonly RateLimitDescriptor[];
  /** Memory the module needs, in pages; the host creates exactly this many (≤ MAX_MEMORY_PAGES). */
  memoryPages: number;
}
