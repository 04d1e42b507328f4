// New versions of roles, built as TUF JSON from the current ones. Pure: no store, no keys.

import { createHash } from 'node:crypto';
import type { PublicKey } from '@apx/core';
import { Metadata, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { CUSTOM_FIELD, type EnvironmentCustom, environmentCustomJson, readEnvironmentCustom } from '../custom.js';
import { TrustError, TrustErrorCode } from '../error.js';
import { tufKey } from '../keys.js';
import { ENVIRONMENT_ROLE_PATHS, metaFileName, ROOT, SNAPSHOT, TARGETS, TIMESTAMP } from '../layout.js';
import { kindOf } from '../metadata.js';

export type Json = Record<string, unknown>;
type AnyMetadata = Metadata<Root> | Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/** TUF's time format: RFC 3339 in UTC without fractions (TUF spec 4.3, `expires`). */
export function tufTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function expiresIn(now: Date, seconds: number): string {
  return tufTime(new Date(now.getTime() + seconds * 1000));
}

/** Metadata with no signatures from the JSON of its `signed` part. */
export function unsigned(role: string, signed: Json): AnyMetadata {
  // biome-ignore lint/suspicious/noExplicitAny: fromJSON's overloads take the JSON object as parsed.
  return Metadata.fromJSON(kindOf(role) as any, { signed, signatures: [] } as any) as AnyMetadata;
}

export interface RoleKeys {
  keys: readonly PublicKey[];
  threshold: number;
}

export function checkThreshold(role: string, spec: RoleKeys): void {
  const distinct = new Set(spec.keys.map((k) => k.keyId));
  if (distinct.size !== spec.keys.length) {
    throw new TrustError(TrustErrorCode.DUPLICATE_KEY, `role ${role} is given the same key twice`, {
      hint: 'a threshold counts distinct keys: give each approver their own key',
    });
  }
  if (!Number.isInteger(spec.threshold) || spec.threshold < 1 || spec.threshold > spec.keys.length) {
    throw new TrustError(
      TrustErrorCode.INVALID_REQUEST,
      `role ${role}: threshold ${spec.threshold} must be between 1 and its ${spec.keys.length} key(s)`,
      { hint: `give ${role} at least as many keys as its threshold` },
    );
  }
}

function keyEntries(spec: RoleKeys): { ids: string[]; keys: Json } {
  const keys: Json = {};
  const ids = spec.keys.map((k) => {
    const key = tufKey(k);
    keys[key.keyID] = key.toJSON();
    return key.keyID;
  });
  return { ids, keys };
}

export interface InitRoles {
  root: RoleKeys;
  targets: RoleKeys;
  snapshot: RoleKeys;
  timestamp: RoleKeys;
  /** Approver keys of each environment role (dev, staging, production). */
  environments: Record<string, RoleKeys>;
}

/** Root version 1: every top-level role's keys and threshold, consistent snapshots on. */
export function initialRoot(roles: InitRoles, expires: string): Json {
  const keys: Json = {};
  const out: Json = {};
  for (const role of [ROOT, TARGETS, SNAPSHOT, TIMESTAMP] as const) {
    checkThreshold(role, roles[role]);
    const e = keyEntries(roles[role]);
    Object.assign(keys, e.keys);
    out[role] = { keyids: e.ids, threshold: roles[role].threshold };
  }
  return { _type: 'root', spec_version: '1.0.31', version: 1, expires, consistent_snapshot: true, keys, roles: out };
}

/**
 * Top-level targets version 1: no targets and no delegations yet. Each environment is
 * delegated in the same publish as its role's first version, because TUF clients require
 * every delegated role to be listed in the snapshot (TUF 5.6.1).
 */
export function initialTargets(expires: string): Json {
  return { _type: 'targets', spec_version: '1.0.31', version: 1, expires, targets: {}, delegations: { keys: {}, roles: [] } };
}

/** A root with one role's keys replaced; keys no role uses any more are dropped. */
export function rootWithRoleKeys(current: Metadata<Root>, role: string, spec: RoleKeys, version: number, expires: string): Json {
  checkThreshold(role, spec);
  const json = current.signed.toJSON() as Json;
  const roles = { ...(json.roles as Json) };
  if (!(role in roles)) throw new TrustError(TrustErrorCode.INVALID_REQUEST, `root defines no role ${role}`);
  const e = keyEntries(spec);
  roles[role] = { keyids: e.ids, threshold: spec.threshold };
  const used = new Set(Object.values(roles).flatMap((r) => (r as { keyids: string[] }).keyids));
  const keys = Object.fromEntries(Object.entries({ ...(json.keys as Json), ...e.keys }).filter(([id]) => used.has(id)));
  return { ...json, version, expires, keys, roles };
}

const ENVIRONMENT_ORDER = ['production', 'staging', 'dev'];

/** A top-level targets with one environment's delegation (keys, threshold) set or added. */
export function targetsWithDelegation(current: Metadata<Targets>, env: string, spec: RoleKeys, version: number, expires: string) {
  checkThreshold(env, spec);
  const json = current.signed.toJSON() as Json;
  const delegations = json.delegations as { keys: Json; roles: Array<Json & { name: string; keyids: string[] }> } | undefined;
  const roles = delegations?.roles ?? [];
  const e = keyEntries(spec);
  const role = { name: env, keyids: e.ids, threshold: spec.threshold, terminating: false, paths: ENVIRONMENT_ROLE_PATHS };
  // An environment not delegated yet is added; production first, so that a stock client's
  // search (TUF 5.6.7, preorder) asks the strictest environment first.
  const nextRoles = roles.some((r) => r.name === env)
    ? roles.map((r) => (r.name === env ? { ...r, keyids: e.ids, threshold: spec.threshold } : r))
    : [...roles, role].sort((a, b) => ENVIRONMENT_ORDER.indexOf(a.name) - ENVIRONMENT_ORDER.indexOf(b.name));
  const used = new Set(nextRoles.flatMap((r) => r.keyids));
  const keys = Object.fromEntries(Object.entries({ ...(delegations?.keys ?? {}), ...e.keys }).filter(([id]) => used.has(id)));
  return { ...json, version, expires, delegations: { keys, roles: nextRoles } };
}

/** An environment role's JSON: its targets and APX's custom field. */
export function environmentJson(
  base: Metadata<Targets> | undefined,
  env: string,
  version: number,
  expires: string,
  change: (targets: Json, custom: EnvironmentCustom) => void,
): Json {
  const json: Json = base
    ? (base.signed.toJSON() as Json)
    : { _type: 'targets', spec_version: '1.0.31', version, expires, targets: {} };
  const targets = { ...((json.targets as Json | undefined) ?? {}) };
  const custom = base ? readEnvironmentCustom(env, base.signed) : { signers: [], revoked: [] };
  change(targets, custom);
  return { ...json, version, expires, targets, [CUSTOM_FIELD]: environmentCustomJson(custom) };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A snapshot listing the given versions (with length and hash: mix-and-match shows at once). */
export function snapshotJson(
  current: Metadata<Snapshot> | undefined,
  files: Record<string, { version: number; bytes: Buffer }>,
  version: number,
  expires: string,
): Json {
  const meta: Json = current ? { ...((current.signed.toJSON() as Json).meta as Json) } : {};
  for (const [role, f] of Object.entries(files)) {
    meta[metaFileName(role)] = { version: f.version, length: f.bytes.byteLength, hashes: { sha256: sha256Hex(f.bytes) } };
  }
  return { _type: 'snapshot', spec_version: '1.0.31', version, expires, meta };
}

export function timestampJson(snapshot: { version: number; bytes: Buffer }, version: number, expires: string): Json {
  return {
    _type: 'timestamp',
    spec_version: '1.0.31',
    version,
    expires,
    meta: {
      [metaFileName(SNAPSHOT)]: {
        version: snapshot.version,
        length: snapshot.bytes.byteLength,
        hashes: { sha256: sha256Hex(snapshot.bytes) },
      },
    },
  };
}
