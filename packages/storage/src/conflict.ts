import { StorageError, StorageErrorCode } from './error.js';
import type { ArtifactStore, PutOutcome } from './store.js';

/**
 * A create-only put found the name taken: identical bytes make the put idempotent,
 * anything else is a CONFLICT (published versions are immutable).
 */
export async function compareExisting(store: ArtifactStore, name: string, bytes: Uint8Array): Promise<PutOutcome> {
  let existing: Buffer | undefined;
  try {
    existing = await store.get(name, { maxBytes: bytes.byteLength });
  } catch (err) {
    if (!(err instanceof StorageError) || err.code !== StorageErrorCode.TOO_LARGE) throw err;
  }
  if (existing?.equals(bytes)) return 'unchanged';
  throw conflict(store.url, name);
}

export function conflict(storeUrl: string, name: string): StorageError {
  return new StorageError(StorageErrorCode.CONFLICT, `${name} already exists in ${storeUrl} with different content`, {
    hint: 'published versions are immutable: bump the policy version (metadata.version) and publish again',
  });
}

/**
 * A compare-and-swap lost: the object is no longer the version the caller read (or, with
 * `expected === null`, it exists now). The caller must read again and redo its change.
 */
export function swapConflict(storeUrl: string, name: string, expected: string | null): StorageError {
  const what =
    expected === null
      ? 'was created by another writer since it was read as absent'
      : 'was changed by another writer since it was read';
  return new StorageError(StorageErrorCode.CONFLICT, `${name} in ${storeUrl} ${what}`, {
    hint: `re-read ${name}, apply your change to the current version and retry`,
  });
}
