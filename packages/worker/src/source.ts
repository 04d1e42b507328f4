import type { ArtifactRef } from '@apx/core';

/** What the store holds for one reference: the artifact and what sits beside it. */
export interface ArtifactMaterial {
  artifact: Buffer;
  /** The `.sig` file's content; undefined when there is none. */
  signature: Buffer | undefined;
  /** The `.sigstore.json` bundle; undefined when there is none. */
  bundle: Buffer | undefined;
}

/**
 * The worker's view of a store: all it needs, nothing it does not (it never writes).
 * Implementations enforce `maxBytes` while reading and throw ApxErrors for store failures.
 */
export interface ArtifactSource {
  /** The store's URL, without credentials, for messages. */
  readonly url: string;
  /** Undefined when the artifact does not exist. */
  fetch(ref: ArtifactRef, options: { maxBytes: number; signal?: AbortSignal }): Promise<ArtifactMaterial | undefined>;
  /** Versions of one policy present in the store. */
  versions(policyId: string): Promise<string[]>;
  /** Policy ids present in the store. */
  policies(): Promise<string[]>;
  /** Any other object of the store (trust metadata under tuf/), capped; undefined when absent. */
  getObject(name: string, maxBytes: number): Promise<Buffer | undefined>;
}
