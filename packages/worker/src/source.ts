import type { ArtifactRef, AttestationKind } from '@apx/core';

/** What the store holds for one reference: the artifact and what sits beside it. */
export interface ArtifactMaterial {
  artifact: Buffer;
  /** The `.sig` file's content; undefined when there is none. */
  signature: Buffer | undefined;
  /** The `.sigstore.json` bundle; undefined when there is none. */
  bundle: Buffer | undefined;
  /** Attestation bundles (`.wasm.sbom.sigstore.json`, `.wasm.provenance.sigstore.json`), when asked for and present. */
  sbom?: Buffer | undefined;
  provenance?: Buffer | undefined;
}

/**
 * The worker's view of a store: all it needs, nothing it does not (it never writes).
 * Implementations enforce `maxBytes` while reading and throw ApxErrors for store failures.
 */
export interface ArtifactSource {
  /** The store's URL, without credentials, for messages. */
  readonly url: string;
  /**
   * Undefined when the artifact does not exist. `attestations`: the attestation bundles to read
   * too, those the environment's trust requires; none when absent (the store is not asked).
   */
  fetch(
    ref: ArtifactRef,
    options: { maxBytes: number; signal?: AbortSignal; attestations?: readonly AttestationKind[] },
  ): Promise<ArtifactMaterial | undefined>;
  /** Versions of one policy present in the store. */
  versions(policyId: string): Promise<string[]>;
  /**
   * One listing of the whole store (discovery, when APX_POLICIES is unset): the artifacts it
   * holds, by policy id, considering at most `maxObjects` object names (the first by name).
   */
  listing(options: { maxObjects: number; signal?: AbortSignal }): Promise<StoreListing>;
  /** Any other object of the store (trust metadata under tuf/), capped; undefined when absent. */
  getObject(name: string, maxBytes: number): Promise<Buffer | undefined>;
}

/** What one listing of a store found (nothing is read: names only). */
export interface StoreListing {
  /** Versions of each policy, from the names `<policy-id>@<semver>.wasm`. */
  artifacts: Map<string, string[]>;
  /** References (`<policy-id>@<semver>`) with a signature or bundle beside them in the listing. */
  signed: Set<string>;
  /** Objects listed, of any kind (artifacts, signatures, bundles, trust metadata, others). */
  objects: number;
  /** More than `maxObjects` objects: those past the cap were not considered. */
  truncated: boolean;
  /** `.wasm` objects whose names are not `<policy-id>@<semver>.wasm`: how many, and a few names. */
  misnamed: { count: number; examples: string[] };
  /** Why the store holds nothing, when the store can tell (a directory that does not exist). */
  absent?: string;
}

/** A listing of exactly these artifacts (for sources that know their artifacts, and test doubles). */
export function listingOf(refs: Iterable<ArtifactRef>): StoreListing {
  const artifacts = new Map<string, string[]>();
  const signed = new Set<string>();
  let objects = 0;
  for (const { policyId, version } of refs) {
    objects++;
    signed.add(`${policyId}@${version}`);
    const versions = artifacts.get(policyId);
    if (versions) versions.push(version);
    else artifacts.set(policyId, [version]);
  }
  return { artifacts, signed, objects, truncated: false, misnamed: { count: 0, examples: [] } };
}
