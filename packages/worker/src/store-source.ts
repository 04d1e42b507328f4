import { type ArtifactRef, formatArtifactRef } from '@apx/core';
import { ARTIFACT_SUFFIX, fetchArtifact, openStore, parseVersionObjectName } from '@apx/storage';
import type { ArtifactSource } from './source.js';

/** The worker's read-only view of an ArtifactStore chosen by URL (APX_STORE). */
export async function openArtifactSource(
  url: string,
  options: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<ArtifactSource> {
  const store = await openStore(url, {
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  // The artifacts among the store's objects (signatures and bundles sit beside them).
  const artifacts = async (prefix: string) =>
    (await store.list(prefix))
      .map((name) => parseVersionObjectName(name))
      .filter((o) => o?.suffix === ARTIFACT_SUFFIX)
      .map((o) => (o as NonNullable<typeof o>).ref);
  return {
    url: store.url,
    async fetch(ref: ArtifactRef, options: { maxBytes: number; signal?: AbortSignal }) {
      const fetched = await fetchArtifact(store, formatArtifactRef(ref), {
        maxBytes: options.maxBytes,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return fetched ? { artifact: fetched.artifact, signature: fetched.signature, bundle: fetched.bundle } : undefined;
    },
    async versions(policyId: string) {
      return (await artifacts(`${policyId}@`)).filter((r) => r.policyId === policyId).map((r) => r.version);
    },
    getObject(name: string, maxBytes: number) {
      return store.get(name, { maxBytes });
    },
    async policies() {
      return [...new Set((await artifacts('')).map((r) => r.policyId))].sort();
    },
  };
}
