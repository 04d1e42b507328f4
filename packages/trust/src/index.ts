// The trust repository: TUF metadata in the artifact store. apx trust writes it
// (repository/), workers read it (client/).

export { type ApprovedTarget, TrustClient, type TrustClientOptions, type TrustView } from './client/client.js';
// StoreFetcher (the stock tuf-js Updater over a store) is '@apx/trust/store-fetcher': it loads
// tuf-js's HTTP fetch stack, which the TrustClient here never needs.
export { approvedRefs, tufTrustFor } from './client/view-trust.js';
export {
  type ArtifactSigner,
  type EnvironmentCustom,
  type IdentitySigner,
  type RevocationRecord,
  readEnvironmentCustom,
} from './custom.js';
export { isTrustError, TrustError, TrustErrorCode } from './error.js';
export { type MetadataSigner, publicKeyOf, tufKey } from './keys.js';
export {
  ENVIRONMENT_ROLES,
  METADATA_PREFIX,
  maxBytesOf,
  metadataObjectName,
  ROOT,
  SNAPSHOT,
  STAGING_PREFIX,
  TARGETS,
  TIMESTAMP,
  TIMESTAMP_OBJECT,
  TOP_LEVEL_ROLES,
} from './layout.js';
export type { InitRoles, RoleKeys } from './repository/drafts.js';
export {
  type Approval,
  type CommitResult,
  type Drafts,
  type PendingRole,
  type RepositoryOptions,
  TrustRepository,
  type UpdateOptions,
} from './repository/repository.js';
export type { RepositoryState } from './repository/state.js';
