// Artifact stores: where compiled, signed policies are published and where workers fetch them.

export { replaceFileDurably } from './durable-file.js';
export { isStorageError, StorageError, StorageErrorCode } from './error.js';
export { LocalStore, type LocalStoreOptions } from './local.js';
export {
  ARTIFACT_SUFFIX,
  type ArtifactRef,
  BUNDLE_SUFFIX,
  formatArtifactRef,
  PROVENANCE_SUFFIX,
  parseArtifactRef,
  parseVersionObjectName,
  SBOM_SUFFIX,
  SIGNATURE_SUFFIX,
  versionObjectNames,
} from './names.js';
export { DEFAULT_STORE_URL, type OpenStoreOptions, openStore } from './open.js';
export {
  type ArtifactFiles,
  type FetchedArtifact,
  type FetchOptions,
  fetchArtifact,
  MAX_BUNDLE_BYTES,
  MAX_SIGNATURE_BYTES,
  type PublishRequest,
  type PublishResult,
  publishArtifact,
  publishArtifactFiles,
  readArtifactFiles,
} from './publish.js';
export { REDACTED, redactStoreUrl } from './redact.js';
export {
  type ArtifactStore,
  ATTESTATION_OBJECTS,
  type AttestationObject,
  type AttestationRequest,
  DEFAULT_ATTEMPTS,
  DEFAULT_MAX_BYTES,
  DEFAULT_TIMEOUT_MS,
  type GetOptions,
  type ListOptions,
  type PutOptions,
  type PutOutcome,
  type StoredVersion,
  type SwapOptions,
  type VersionedObject,
  type VersionLimits,
  type VersionObjects,
} from './store.js';
