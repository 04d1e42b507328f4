// Where the trust repository lives in a store and what its files are called. One layout,
// shared by the writer (apx trust) and the reader (workers): TUF's consistent-snapshot
// layout (TUF spec 5.3.1, 6.2) under `tuf/`, so a stock TUF client reads it from a static
// file server with metadataBaseUrl = <store>/tuf/.

import { ENVIRONMENTS } from '@apx/core';

/** Published metadata: `tuf/1.root.json`, `tuf/timestamp.json`, `tuf/7.snapshot.json`... */
export const METADATA_PREFIX = 'tuf/';
/** Metadata waiting for more signatures (offline multi-party signing); not read by clients. */
export const STAGING_PREFIX = 'tuf-staging/';

export const ROOT = 'root';
export const TARGETS = 'targets';
export const SNAPSHOT = 'snapshot';
export const TIMESTAMP = 'timestamp';
export const TOP_LEVEL_ROLES = [ROOT, TARGETS, SNAPSHOT, TIMESTAMP] as const;
export type TopLevelRole = (typeof TOP_LEVEL_ROLES)[number];

/** One delegated targets role per environment, named after it. */
export const ENVIRONMENT_ROLES: readonly string[] = ENVIRONMENTS;
/** The paths each environment role may approve: policy artifacts, `<policy-id>@<semver>.wasm`. */
export const ENVIRONMENT_ROLE_PATHS = ['*.wasm'];

/** TUF's own name for a role's file inside snapshot and timestamp metadata (`targets.json`). */
export function metaFileName(role: string): string {
  return `${role}.json`;
}

/**
 * The object name of a role's metadata at a version. With consistent snapshots every file
 * but timestamp.json carries its version, so published files are never overwritten: a reader
 * following one timestamp always sees one consistent set.
 */
export function metadataObjectName(role: string, version: number): string {
  return role === TIMESTAMP ? `${METADATA_PREFIX}timestamp.json` : `${METADATA_PREFIX}${version}.${role}.json`;
}

export const TIMESTAMP_OBJECT = `${METADATA_PREFIX}timestamp.json`;

export function stagedObjectName(role: string): string {
  return `${STAGING_PREFIX}${role}.json`;
}

/** The version in a published file name (`7.snapshot.json` → 7 for role snapshot), if any. */
export function versionOfObject(name: string, role: string): number | undefined {
  const m = /^tuf\/([1-9][0-9]{0,15})\.([a-z0-9._-]+)\.json$/.exec(name);
  if (!m || m[2] !== role) return undefined;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * Caps on what a reader downloads per file (endless-data attack, TUF 5.2): generous for
 * APX's sizes (a role of a thousand approvals is ~400 KB), tuf-js's defaults for the rest.
 */
export const MAX_METADATA_BYTES: Record<string, number> = {
  [ROOT]: 512_000,
  [TIMESTAMP]: 16_384,
  [SNAPSHOT]: 2_000_000,
  [TARGETS]: 5_000_000,
};
export function maxBytesOf(role: string): number {
  return MAX_METADATA_BYTES[role] ?? MAX_METADATA_BYTES[TARGETS] ?? 5_000_000;
}

/** How long each role's metadata stays valid unless the operator says otherwise. */
export const DEFAULT_EXPIRY_SECONDS: Record<string, number> = {
  [ROOT]: 365 * 86_400,
  [TARGETS]: 365 * 86_400,
  [SNAPSHOT]: 7 * 86_400,
  [TIMESTAMP]: 86_400,
};
/** Environment roles: what an approval lasts before it must be re-signed. */
export const DEFAULT_ENVIRONMENT_EXPIRY_SECONDS = 90 * 86_400;

export function defaultExpirySeconds(role: string): number {
  return DEFAULT_EXPIRY_SECONDS[role] ?? DEFAULT_ENVIRONMENT_EXPIRY_SECONDS;
}

/** Root rotations a reader follows in one refresh (tuf-js's default). */
export const MAX_ROOT_ROTATIONS = 256;
