// The writer's view of a published trust repository: every file read from the store and
// verified as a client would (signatures, thresholds, versions, hashes), expiry aside, since
// an operator must be able to renew an expired timestamp.

import { type ArtifactStore, isStorageError } from '@apx/storage';
import type { Metadata, Root, Snapshot, Targets, Timestamp } from '@tufjs/models';
import { TrustError, TrustErrorCode } from '../error.js';
import {
  MAX_ROOT_ROTATIONS,
  METADATA_PREFIX,
  maxBytesOf,
  metadataObjectName,
  metaFileName,
  ROOT,
  SNAPSHOT,
  STAGING_PREFIX,
  TARGETS,
  TIMESTAMP,
  TIMESTAMP_OBJECT,
  versionOfObject,
} from '../layout.js';
import { parseMetadata, type RoleMetadata, verifyRole } from '../metadata.js';

export interface StagedRole {
  role: string;
  metadata: Metadata<Root> | Metadata<Targets>;
  /** Compare-and-swap token of the staged file. */
  token: string;
}

export interface RepositoryState {
  root: Metadata<Root>;
  timestamp: Metadata<Timestamp>;
  /** Compare-and-swap token of tuf/timestamp.json as read: the publish commits against it. */
  timestampToken: string;
  snapshot: Metadata<Snapshot>;
  targets: Metadata<Targets>;
  /** Environment roles the snapshot lists (an environment with no approval yet has none). */
  environments: Map<string, Metadata<Targets>>;
  staged: Map<string, StagedRole>;
  /** Every published object name under tuf/, for picking versions past leftovers of failed publishes. */
  published: string[];
}

export function storeFailed(err: unknown, what: string): TrustError {
  if (err instanceof TrustError) return err;
  const conflict = isStorageError(err) && err.code === 'CONFLICT';
  return new TrustError(conflict ? TrustErrorCode.CONFLICT : TrustErrorCode.STORE_FAILED, `${what}: ${(err as Error).message}`, {
    hint: conflict
      ? 'another apx trust command changed the repository meanwhile; run the command again'
      : 'check the store URL and that it is reachable',
    cause: err,
  });
}

async function read(store: ArtifactStore, name: string, role: string): Promise<Buffer | undefined> {
  try {
    return await store.get(name, { maxBytes: maxBytesOf(role) });
  } catch (err) {
    throw storeFailed(err, `cannot read ${name} from ${store.url}`);
  }
}

/** Checks a file against what its referrer (timestamp or snapshot) says of it (TUF 5.5.2, 5.6.2). */
function checkMeta(meta: { version: number; verify(data: Buffer): void }, bytes: Buffer, md: RoleMetadata, name: string) {
  try {
    meta.verify(bytes);
  } catch (err) {
    throw new TrustError(TrustErrorCode.MISMATCH, `trust metadata ${name} does not match its length or hash`, { cause: err });
  }
  if (md.signed.version !== meta.version) {
    throw new TrustError(
      TrustErrorCode.MISMATCH,
      `trust metadata ${name} is version ${md.signed.version}, expected ${meta.version}`,
    );
  }
}

/**
 * Reads and verifies the repository. The chain of roots starts at tuf/1.root.json (or the
 * root the operator pins) and each next root must be signed by a threshold of the previous
 * root's and its own root keys (TUF 5.3.4).
 */
export async function loadRepository(store: ArtifactStore, options: { trustedRoot?: Uint8Array } = {}): Promise<RepositoryState> {
  const firstBytes = options.trustedRoot ?? (await read(store, metadataObjectName(ROOT, 1), ROOT));
  if (!firstBytes) {
    throw new TrustError(TrustErrorCode.REPOSITORY_NOT_FOUND, `no trust repository in ${store.url} (tuf/1.root.json not found)`, {
      hint: 'create one with apx trust init',
    });
  }
  let root = parseMetadata(ROOT, firstBytes, 'root') as Metadata<Root>;
  verifyRole(root, ROOT, root, `${root.signed.version}.root.json`);
  for (let i = 0; i < MAX_ROOT_ROTATIONS; i++) {
    const name = metadataObjectName(ROOT, root.signed.version + 1);
    const bytes = await read(store, name, ROOT);
    if (!bytes) break;
    const next = parseMetadata(ROOT, bytes, name) as Metadata<Root>;
    if (next.signed.version !== root.signed.version + 1) {
      throw new TrustError(TrustErrorCode.MISMATCH, `${name} holds root version ${next.signed.version}`);
    }
    verifyRole(root, ROOT, next, name);
    verifyRole(next, ROOT, next, name);
    root = next;
  }
  let versioned: Awaited<ReturnType<ArtifactStore['getVersioned']>>;
  try {
    versioned = await store.getVersioned(TIMESTAMP_OBJECT, { maxBytes: maxBytesOf(TIMESTAMP) });
  } catch (err) {
    throw storeFailed(err, `cannot read ${TIMESTAMP_OBJECT} from ${store.url}`);
  }
  if (!versioned) {
    throw new TrustError(
      TrustErrorCode.REPOSITORY_NOT_FOUND,
      `no trust repository in ${store.url} (tuf/timestamp.json not found)`,
      {
        hint: 'an apx trust init was interrupted: run it again',
      },
    );
  }
  const timestamp = parseMetadata(TIMESTAMP, versioned.bytes, TIMESTAMP_OBJECT) as Metadata<Timestamp>;
  verifyRole(root, TIMESTAMP, timestamp, TIMESTAMP_OBJECT);
  const snapshotName = metadataObjectName(SNAPSHOT, timestamp.signed.snapshotMeta.version);
  const snapshotBytes = await read(store, snapshotName, SNAPSHOT);
  if (!snapshotBytes) throw new TrustError(TrustErrorCode.METADATA_INVALID, `trust metadata ${snapshotName} is missing`);
  const snapshot = parseMetadata(SNAPSHOT, snapshotBytes, snapshotName) as Metadata<Snapshot>;
  checkMeta(timestamp.signed.snapshotMeta, snapshotBytes, snapshot, snapshotName);
  verifyRole(root, SNAPSHOT, snapshot, snapshotName);

  const loadTargets = async (role: string, delegator: Metadata<Root> | Metadata<Targets>) => {
    const meta = snapshot.signed.meta[metaFileName(role)];
    if (!meta) return undefined;
    const name = metadataObjectName(role, meta.version);
    const bytes = await read(store, name, role);
    if (!bytes) throw new TrustError(TrustErrorCode.METADATA_INVALID, `trust metadata ${name} is missing`);
    const md = parseMetadata(role, bytes, name) as Metadata<Targets>;
    checkMeta(meta, bytes, md, name);
    verifyRole(delegator, role, md, name);
    return md;
  };
  const targets = await loadTargets(TARGETS, root);
  if (!targets) throw new TrustError(TrustErrorCode.METADATA_INVALID, `${snapshotName} does not list targets.json`);
  const environments = new Map<string, Metadata<Targets>>();
  for (const role of Object.keys(targets.signed.delegations?.roles ?? {})) {
    const md = await loadTargets(role, targets);
    if (md) environments.set(role, md);
  }

  let published: string[];
  let stagedNames: string[];
  try {
    published = await store.list(METADATA_PREFIX);
    stagedNames = await store.list(STAGING_PREFIX);
  } catch (err) {
    throw storeFailed(err, `cannot list the trust repository in ${store.url}`);
  }
  const staged = new Map<string, StagedRole>();
  for (const name of stagedNames) {
    const role = name.slice(STAGING_PREFIX.length).replace(/\.json$/, '');
    let v: Awaited<ReturnType<ArtifactStore['getVersioned']>>;
    try {
      v = await store.getVersioned(name, { maxBytes: maxBytesOf(role) });
    } catch (err) {
      throw storeFailed(err, `cannot read ${name} from ${store.url}`);
    }
    if (!v) continue;
    const metadata = parseMetadata(role, v.bytes, name) as Metadata<Root> | Metadata<Targets>;
    staged.set(role, { role, metadata, token: v.token });
  }
  return { root, timestamp, timestampToken: versioned.token, snapshot, targets, environments, staged, published };
}

/** The highest version of a role among the published files (committed or left by a failed publish). */
export function highestPublished(state: Pick<RepositoryState, 'published'>, role: string): number {
  let max = 0;
  for (const name of state.published) {
    const v = versionOfObject(name, role);
    if (v !== undefined && v > max) max = v;
  }
  return max;
}
