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
import { timestampJson, unsigned } from './drafts.js';

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
export interface LoadOptions {
  trustedRoot?: Uint8Array;
  /**
   * Recovery after tuf/timestamp.json was damaged or forged: when it does not verify, start
   * from the newest snapshot that does (with every file it names), so that the next publish
   * writes a good timestamp over the bad one. Its version goes past every published snapshot,
   * hence past any timestamp a worker trusted (each publish raises both).
   */
  recoverTimestamp?: boolean;
}

export async function loadRepository(store: ArtifactStore, options: LoadOptions = {}): Promise<RepositoryState> {
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
  let published: string[];
  try {
    published = await store.list(METADATA_PREFIX);
  } catch (err) {
    throw storeFailed(err, `cannot list the trust repository in ${store.url}`);
  }
  const current = async () => {
    const ts = parseMetadata(TIMESTAMP, versioned.bytes, TIMESTAMP_OBJECT) as Metadata<Timestamp>;
    verifyRole(root, TIMESTAMP, ts, TIMESTAMP_OBJECT);
    const name = metadataObjectName(SNAPSHOT, ts.signed.snapshotMeta.version);
    const bytes = await read(store, name, SNAPSHOT);
    if (!bytes) throw new TrustError(TrustErrorCode.METADATA_INVALID, `trust metadata ${name} is missing`);
    const snap = parseMetadata(SNAPSHOT, bytes, name) as Metadata<Snapshot>;
    checkMeta(ts.signed.snapshotMeta, bytes, snap, name);
    verifyRole(root, SNAPSHOT, snap, name);
    return { timestamp: ts, snapshot: snap };
  };
  let timestamp: Metadata<Timestamp>;
  let snapshot: Metadata<Snapshot>;
  try {
    ({ timestamp, snapshot } = await current());
  } catch (err) {
    if (!options.recoverTimestamp || !(err instanceof TrustError)) {
      if (err instanceof TrustError && !options.recoverTimestamp) {
        throw new TrustError(err.code, err.message, {
          hint: 'if tuf/timestamp.json was damaged or forged, apx trust publish --recover writes a good one from the newest valid snapshot',
          cause: err,
        });
      }
      throw err;
    }
    ({ timestamp, snapshot } = await newestValidSnapshot(store, root, published));
  }

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
  if (!targets)
    throw new TrustError(
      TrustErrorCode.METADATA_INVALID,
      `snapshot version ${snapshot.signed.version} does not list targets.json`,
    );
  const environments = new Map<string, Metadata<Targets>>();
  for (const role of Object.keys(targets.signed.delegations?.roles ?? {})) {
    const md = await loadTargets(role, targets);
    if (md) environments.set(role, md);
  }

  let stagedNames: string[];
  try {
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

/**
 * The newest published snapshot that verifies under the root, with the targets files it names,
 * and a stand-in timestamp at the highest snapshot version seen: what a recovery publishes on.
 */
async function newestValidSnapshot(
  store: ArtifactStore,
  root: Metadata<Root>,
  published: string[],
): Promise<{ timestamp: Metadata<Timestamp>; snapshot: Metadata<Snapshot> }> {
  const versions = published
    .map((n) => versionOfObject(n, SNAPSHOT))
    .filter((v): v is number => v !== undefined)
    .sort((a, b) => b - a);
  for (const v of versions) {
    const name = metadataObjectName(SNAPSHOT, v);
    try {
      const bytes = await read(store, name, SNAPSHOT);
      if (!bytes) continue;
      const snapshot = parseMetadata(SNAPSHOT, bytes, name) as Metadata<Snapshot>;
      verifyRole(root, SNAPSHOT, snapshot, name);
      for (const [file, meta] of Object.entries(snapshot.signed.meta)) {
        const role = file.replace(/\.json$/, '');
        const roleName = metadataObjectName(role, meta.version);
        const roleBytes = await read(store, roleName, role);
        if (!roleBytes) throw new TrustError(TrustErrorCode.METADATA_INVALID, `${roleName} is missing`);
        checkMeta(meta, roleBytes, parseMetadata(role, roleBytes, roleName), roleName);
      }
      const stand = unsignedTimestamp({ version: versions[0] as number, snapshotVersion: v, bytes });
      return { timestamp: stand, snapshot };
    } catch (err) {
      if (!(err instanceof TrustError)) throw err;
    }
  }
  throw new TrustError(TrustErrorCode.METADATA_INVALID, `no valid snapshot in ${store.url} to recover from`, {
    hint: 'restore tuf/ from a backup',
  });
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

function unsignedTimestamp(o: { version: number; snapshotVersion: number; bytes: Buffer }): Metadata<Timestamp> {
  const json = timestampJson({ version: o.snapshotVersion, bytes: o.bytes }, o.version, '1970-01-01T00:00:00Z');
  return unsigned(TIMESTAMP, json) as Metadata<Timestamp>;
}
