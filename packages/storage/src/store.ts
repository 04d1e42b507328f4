import { MAX_ARTIFACT_BYTES } from '@apx/core';

/** Timeout of each network call unless the store's options say otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Attempts of an idempotent request (GET, HEAD, list) on a transient failure. */
export const DEFAULT_ATTEMPTS = 3;
/** Default cap of `get`: the runbook's 10 MiB artifact cap. */
export const DEFAULT_MAX_BYTES = MAX_ARTIFACT_BYTES;

export interface GetOptions {
  /**
   * Refuse (TOO_LARGE) as soon as the object is known to exceed this many bytes: from the
   * announced length when there is one, else while streaming. Default: 10 MiB.
   */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface PutOptions {
  /**
   * Create-only: if the name exists with the same bytes the put is a no-op ('unchanged');
   * with different bytes it fails with CONFLICT. Decided by the store atomically where the
   * store can (link(2), GCS ifGenerationMatch=0, S3 If-None-Match, OCI digests).
   */
  ifAbsent?: boolean;
  signal?: AbortSignal;
}

export interface ListOptions {
  signal?: AbortSignal;
}

/** An object's bytes with the store's version token, for compare-and-swap. */
export interface VersionedObject {
  bytes: Buffer;
  /**
   * Opaque: names the exact version read (local: sha256 of the content, GCS: generation,
   * S3: ETag, OCI: manifest digest). Only meaningful to `swap` of the same store.
   */
  token: string;
}

export interface SwapOptions {
  signal?: AbortSignal;
}

/** `created`: new bytes stored; `unchanged`: identical bytes were already there. */
export type PutOutcome = 'created' | 'unchanged';

/** One published version: the artifact with its detached signature and optional bundle. */
export interface VersionObjects {
  artifact: Uint8Array;
  signature: Uint8Array;
  bundle?: Uint8Array;
  /** The signed SBOM attestation (`.wasm.sbom.sigstore.json`), when there is one. */
  sbom?: Uint8Array;
  /** The signed provenance attestation (`.wasm.provenance.sigstore.json`), when there is one. */
  provenance?: Uint8Array;
}

export interface VersionLimits {
  artifact: number;
  signature: number;
  bundle: number;
}

/** The attestation bundles stored beside an artifact. */
export type AttestationObject = 'sbom' | 'provenance';
export const ATTESTATION_OBJECTS: readonly AttestationObject[] = ['sbom', 'provenance'];

/**
 * Which attestations a read asks for: those listed (what the reader's environment requires),
 * or both with `true`; none when absent.
 */
export type AttestationRequest = boolean | readonly AttestationObject[];

/** The attestations a request names. */
export function requestedAttestations(request: AttestationRequest | undefined): AttestationObject[] {
  if (request === true) return [...ATTESTATION_OBJECTS];
  if (!request) return [];
  return ATTESTATION_OBJECTS.filter((kind) => request.includes(kind));
}

/** One version as read back; signature and bundle are undefined when not stored. */
export interface StoredVersion {
  artifact: Buffer;
  signature: Buffer | undefined;
  bundle: Buffer | undefined;
  /** Attestation bundles (read only when asked for; undefined when not stored or not asked for). */
  sbom?: Buffer | undefined;
  provenance?: Buffer | undefined;
}

/**
 * Where artifacts live. Names are relative to the store's URL prefix, e.g.
 * `pb-pay-v1@1.0.0.wasm`; `get` returns undefined for a name that does not exist.
 */
export interface ArtifactStore {
  /** The store's URL for messages and logs: never contains a credential. */
  readonly url: string;
  get(name: string, options?: GetOptions): Promise<Buffer | undefined>;
  put(name: string, bytes: Uint8Array, options?: PutOptions): Promise<PutOutcome>;
  /** Like get, plus an opaque token naming the exact version read (undefined when absent). */
  getVersioned(name: string, options?: GetOptions): Promise<VersionedObject | undefined>;
  /**
   * Compare-and-swap: writes `bytes` under `name` only if the object is still the version
   * `expected` names (a token from getVersioned), or, with expected === null, only if no object
   * has that name. Otherwise throws StorageError CONFLICT, whose message names the object and says
   * that another writer changed it since it was read, and whose hint says to re-read and retry.
   * Returns the new object's token. Atomic where the backend allows it (docs/storage.md,
   * "Compare-and-swap"); writers of a name managed this way should all use swap, not put.
   */
  swap(name: string, bytes: Uint8Array, expected: string | null, options?: SwapOptions): Promise<string>;
  /** Object names starting with `prefix`, sorted. */
  list(prefix?: string, options?: ListOptions): Promise<string[]>;
  /**
   * Stores that can publish the three objects of a version in one atomic step implement
   * this (OCI: one manifest); `publishArtifact` otherwise writes them one by one in a safe
   * order. Always create-only.
   */
  putVersion?(ref: string, objects: VersionObjects, options?: { signal?: AbortSignal }): Promise<PutOutcome>;
  /**
   * Stores that publish a version as one unit (OCI) read it as one unit too, so the three
   * files always come from the same publish. Limits as in `fetchArtifact`.
   */
  getVersion?(
    ref: string,
    limits: VersionLimits,
    options?: { signal?: AbortSignal; attestations?: AttestationRequest },
  ): Promise<StoredVersion | undefined>;
  /** Releases sockets or child resources, if any. */
  close?(): Promise<void>;
}
