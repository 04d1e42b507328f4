import { stat } from 'node:fs/promises';
import { formatArtifactRef } from '@apx/core';
import {
  ARTIFACT_SUFFIX,
  type ArtifactStore,
  BUNDLE_SUFFIX,
  fetchArtifact,
  LocalStore,
  openStore,
  parseVersionObjectName,
  SIGNATURE_SUFFIX,
} from '@apx/storage';
import type { ArtifactSource, StoreListing } from './source.js';

/** Names of misnamed artifacts kept for messages. */
const EXAMPLES = 3;

/** The worker's read-only view of an ArtifactStore chosen by URL (APX_STORE). */
export async function openArtifactSource(
  url: string,
  options: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<ArtifactSource> {
  const store = await openStore(url, {
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  return artifactSourceOf(store);
}

/** The worker's read-only view of an open ArtifactStore. */
export function artifactSourceOf(store: ArtifactStore): ArtifactSource {
  // The artifacts among the store's objects (signatures and bundles sit beside them).
  const artifacts = async (prefix: string) =>
    (await store.list(prefix))
      .map((name) => parseVersionObjectName(name))
      .filter((o) => o?.suffix === ARTIFACT_SUFFIX)
      .map((o) => (o as NonNullable<typeof o>).ref);
  return {
    url: store.url,
    async fetch(ref, options) {
      // Attestations only when the environment's trust requires them (the loader says which):
      // a worker that requires none never asks the store for them.
      const fetched = await fetchArtifact(store, formatArtifactRef(ref), {
        maxBytes: options.maxBytes,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.attestations?.length ? { attestations: options.attestations } : {}),
      });
      if (!fetched) return undefined;
      const { ref: _ref, ...material } = fetched;
      return material;
    },
    async versions(policyId: string) {
      return (await artifacts(`${policyId}@`)).filter((r) => r.policyId === policyId).map((r) => r.version);
    },
    getObject(name: string, maxBytes: number) {
      return store.get(name, { maxBytes });
    },
    async listing({ maxObjects, signal }) {
      const names = await store.list('', signal ? { signal } : {});
      const considered = names.length > maxObjects ? names.slice(0, maxObjects) : names;
      const listing: StoreListing = {
        artifacts: new Map(),
        signed: new Set(),
        objects: names.length,
        truncated: names.length > maxObjects,
        misnamed: { count: 0, examples: [] },
      };
      for (const name of considered) {
        const parsed = parseVersionObjectName(name);
        if (parsed?.suffix === ARTIFACT_SUFFIX) {
          const versions = listing.artifacts.get(parsed.ref.policyId);
          if (versions) versions.push(parsed.ref.version);
          else listing.artifacts.set(parsed.ref.policyId, [parsed.ref.version]);
        } else if (parsed?.suffix === SIGNATURE_SUFFIX || parsed?.suffix === BUNDLE_SUFFIX) {
          listing.signed.add(formatArtifactRef(parsed.ref));
        } else if (!parsed && name.endsWith(ARTIFACT_SUFFIX)) {
          listing.misnamed.count++;
          if (listing.misnamed.examples.length < EXAMPLES) listing.misnamed.examples.push(name);
        }
      }
      if (names.length === 0 && store instanceof LocalStore) {
        const absent = await directoryProblem(store.root);
        if (absent) listing.absent = absent;
      }
      return listing;
    },
  };
}

/** Why a local store's directory cannot hold artifacts, if it cannot. */
async function directoryProblem(root: string): Promise<string | undefined> {
  try {
    return (await stat(root)).isDirectory() ? undefined : `${root} is not a directory`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `the directory ${root} does not exist` : `${root} cannot be read: ${(err as Error).message}`;
  }
}
