import type { ArtifactBinding } from '../binding/statement.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { CertificateIdentity } from '../keyless/identity.js';
import type { PolicyMeta, PolicyTables } from '../wasm/abi.js';
import type { ArtifactRef } from './ref.js';

/** The runbook's cap: artifacts larger than 10 MiB are rejected. */
export const MAX_ARTIFACT_BYTES = 10 * 1024 * 1024;

/** What vouched for the artifact: a runbook key, the environment's TUF targets, or nothing (dev, strict off). */
export type ArtifactTrust = 'keys' | 'tuf' | 'unsigned';

const verifiedBrand: unique symbol = Symbol('VerifiedArtifact');

/**
 * An artifact that passed every check of verifyPolicyArtifact. It carries the compiled
 * WebAssembly.Module rather than bytes: the module was compiled from the very bytes that
 * verified, and a Module cannot be changed afterwards.
 *
 * Only core makes one, and that is checked at run time, not only by the type: each is
 * frozen and registered in a module-private WeakSet when the verifier has run its last
 * check, and consumers (PolicyHost, the worker) call assertVerifiedArtifact. A literal,
 * a spread copy (`{...verified, module: other}`) or a deserialized object is not registered
 * and is refused.
 */
export interface VerifiedArtifact {
  readonly [verifiedBrand]: true;
  readonly ref: ArtifactRef;
  readonly module: WebAssembly.Module;
  /** `sha256:<hex>` of the verified bytes. */
  readonly digest: string;
  readonly size: number;
  /** Key id (hex SHA-256 of SPKI DER) of the key whose signature verified; null only when unsigned. Keyless: the certificate's key. */
  readonly keyId: string | null;
  /** Keyless: the trusted identity the Fulcio certificate satisfied (`subject from issuer`); null when signed by a key. */
  readonly identity: string | null;
  /**
   * Keyless: what the verified Fulcio certificate says (issuer, subject, GitHub facts), so that a
   * holder can judge again whether the identities trusted now still accept it; null when signed by a key.
   */
  readonly certificateIdentity: CertificateIdentity | null;
  /** The module's embedded `apx.meta`; its policy and version equal `ref`. */
  readonly meta: PolicyMeta;
  /** The module's `apx.tables`, ABI-checked and deeply frozen. */
  readonly tables: PolicyTables;
  /** The signed binding statement, when the artifact had one. */
  readonly binding: ArtifactBinding | null;
  /**
   * The attestations verified for it (only those the environment required): the SHA-256 of
   * each bundle, and the package URLs the verified SBOM names (to judge it again when a VEX
   * document arrives).
   */
  readonly attestations?: VerifiedAttestations | undefined;
  readonly trust: ArtifactTrust;
  readonly verifiedAt: Date;
}

export interface VerifiedAttestations {
  sbom?: { digest: string; components: readonly string[] } | undefined;
  provenance?: { digest: string; builderId: string | null } | undefined;
}

export type VerifiedArtifactFields = Omit<VerifiedArtifact, typeof verifiedBrand>;

const issued = new WeakSet<object>();

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  // A Module is an opaque host object: freezing it would change nothing it guarantees.
  if (value instanceof WebAssembly.Module) return value;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
  return value;
}

/**
 * Makes the VerifiedArtifact. Internal to core: only verifyPolicyArtifact calls it, as its
 * very last step, and it is not exported from the package.
 */
export function issueVerifiedArtifact(fields: VerifiedArtifactFields): VerifiedArtifact {
  const artifact: VerifiedArtifact = deepFreeze({
    [verifiedBrand]: true as const,
    ref: { policyId: fields.ref.policyId, version: fields.ref.version },
    module: fields.module,
    digest: fields.digest,
    size: fields.size,
    keyId: fields.keyId,
    identity: fields.identity,
    certificateIdentity: fields.certificateIdentity === null ? null : { ...fields.certificateIdentity },
    meta: { ...fields.meta },
    tables: fields.tables,
    binding: fields.binding === null ? null : { ...fields.binding },
    ...(fields.attestations ? { attestations: structuredClone(fields.attestations) } : {}),
    trust: fields.trust,
    verifiedAt: new Date(fields.verifiedAt.getTime()),
  });
  issued.add(artifact);
  return artifact;
}

/** True only for an object core's verifier made (not a copy, not a look-alike). */
export function isVerifiedArtifact(value: unknown): value is VerifiedArtifact {
  return typeof value === 'object' && value !== null && issued.has(value);
}

/** Throws ARTIFACT_NOT_VERIFIED unless `value` is a VerifiedArtifact core's verifier made. */
export function assertVerifiedArtifact(value: unknown): asserts value is VerifiedArtifact {
  if (!isVerifiedArtifact(value)) {
    throw new VerificationError(
      CoreErrorCode.ARTIFACT_NOT_VERIFIED,
      'refusing to run an artifact that core did not verify (a forged or altered VerifiedArtifact)',
      { hint: 'obtain artifacts from verifyPolicyArtifact and pass them on unchanged' },
    );
  }
}
