// Parsing and checking TUF metadata with @tufjs/models, mapping its errors onto APX codes.

import { type Key, Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { TrustError, TrustErrorCode } from './error.js';
import { checkDistinctKeys } from './keys.js';

export type RoleMetadata = Metadata<Root> | Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/** What a delegating file (root, or targets with delegations) says about keys and roles. */
export interface DelegatingView {
  keys?: Record<string, Key>;
  roles?: Record<string, ViewRole>;
  delegations?: { keys: Record<string, Key>; roles?: Record<string, ViewRole> };
}
interface ViewRole {
  keyIDs: string[];
  threshold: number;
}

export function delegatingView(metadata: { signed: unknown }): DelegatingView {
  return metadata.signed as DelegatingView;
}

const KINDS: Record<string, MetadataKind> = {
  root: MetadataKind.Root,
  timestamp: MetadataKind.Timestamp,
  snapshot: MetadataKind.Snapshot,
};

/** The metadata type a role's file holds: targets for the top-level and every delegated role. */
export function kindOf(role: string): MetadataKind {
  return KINDS[role] ?? MetadataKind.Targets;
}

function invalid(source: string, why: string, cause?: unknown): TrustError {
  return new TrustError(TrustErrorCode.METADATA_INVALID, `invalid trust metadata ${source}: ${why}`, {
    hint: 'the trust repository is written by apx trust; republish it or restore the file',
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Parses one metadata file of a role. Versions must be safe integers: a version such as
 * 1e308 is an integer to JavaScript, and accepting it would let one file freeze every later
 * legitimate update (no version can be higher).
 */
export function parseMetadata(role: string, bytes: Uint8Array, source: string): RoleMetadata {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalid(source, 'not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(source, 'not a JSON object');
  const signed = (json as { signed?: { _type?: unknown; version?: unknown } }).signed;
  const kind = kindOf(role);
  if (signed?._type !== kind) throw invalid(source, `expected _type "${kind}", found ${JSON.stringify(signed?._type)}`);
  if (!Number.isSafeInteger(signed.version) || (signed.version as number) < 1)
    throw invalid(source, `version ${JSON.stringify(signed.version)} is not a positive safe integer`);
  let metadata: RoleMetadata;
  try {
    // biome-ignore lint/suspicious/noExplicitAny: fromJSON's overloads take the JSON object as parsed.
    metadata = Metadata.fromJSON(kind as MetadataKind.Root, json as any);
  } catch (err) {
    throw invalid(source, (err as Error).message, err);
  }
  checkRoleKeys(metadata, source);
  return metadata;
}

/** Every role a root or a delegating targets file defines must name distinct keys. */
function checkRoleKeys(metadata: RoleMetadata, source: string): void {
  const signed = delegatingView(metadata);
  try {
    if (signed.roles && signed.keys) {
      for (const [name, role] of Object.entries(signed.roles)) checkDistinctKeys(signed.keys, role.keyIDs, name);
    }
    const delegations = signed.delegations;
    if (delegations?.roles) {
      for (const [name, role] of Object.entries(delegations.roles)) checkDistinctKeys(delegations.keys, role.keyIDs, name);
    }
  } catch (err) {
    if (err instanceof TrustError) {
      throw new TrustError(err.code, `${err.message} in ${source}`, err.hint ? { hint: err.hint } : {});
    }
    throw err;
  }
}

/**
 * The delegator's verdict on a role's metadata: a threshold of distinct keys of the role,
 * as the delegator names them, signed it (TUF 5.3.4 / 5.4.2 / 5.5.3 / 5.6.3).
 */
export function verifyRole(delegator: Metadata<Root> | Metadata<Targets>, role: string, metadata: RoleMetadata, source: string) {
  try {
    delegator.verifyDelegate(role, metadata);
  } catch (err) {
    throw new TrustError(
      TrustErrorCode.SIGNATURE_THRESHOLD,
      `trust metadata ${source} is not signed by a threshold of ${role} keys: ${(err as Error).message}`,
      { hint: `sign it with enough ${role} keys (apx trust sign --role ${role})`, cause: err },
    );
  }
}

/** Key ids of a role as its delegator defines it, and its threshold. */
export function roleKeys(delegator: Metadata<Root> | Metadata<Targets>, role: string): { keyIDs: string[]; threshold: number } {
  const signed = delegatingView(delegator);
  const r = signed.roles?.[role] ?? signed.delegations?.roles?.[role];
  if (!r) {
    throw new TrustError(TrustErrorCode.INVALID_REQUEST, `the trust repository defines no role ${role}`, {
      hint: 'roles are root, targets, snapshot, timestamp and one per environment (dev, staging, production)',
    });
  }
  return { keyIDs: [...r.keyIDs], threshold: r.threshold };
}

/** Serialized metadata exactly as published (stable key order from toJSON). */
export function metadataBytes(metadata: RoleMetadata): Buffer {
  return Buffer.from(`${JSON.stringify(metadata.toJSON(), null, 1)}\n`);
}
