import { type ArtifactRef, formatArtifactRef } from '@apx/core';
import { fetchArtifact, openStore } from '@apx/storage';
import type { ArtifactSource } from './source.js';

/** `pb-pay-v1@1.0.0.wasm` → its reference parts (signatures and bundles end differently). */
const ARTIFACT_NAME = /^(.+)@([^@/]+)\.wasm$/;

/** The worker's read-only view of an ArtifactStore chosen by URL (APX_STORE). */
export async function openArtifactSource(
  url: string,
  options: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<ArtifactSource> {
  const store = await openStore(url, {
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  const artifacts = async (prefix: string) =>
    (await store.list(prefix)).map((name) => ARTIFACT_NAME.exec(name)).filter((m): m is RegExpExecArray => m !== null);
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
      return (await artifacts(`${policyId}@`)).filter((m) => m[1] === policyId).map((m) => m[2] as string);
    },
    getObject(name: string, maxBytes: number) {
      return store.get(name, { maxBytes });
    },
    async policies() {
      return [...new Set((await artifacts('')).map((m) => m[1] as string))].sort();
    },
  };
}
