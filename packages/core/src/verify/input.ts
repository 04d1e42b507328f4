import type { ArtifactRef } from '../artifact/ref.js';
import type { AttestationRequirements } from '../attestation/requirements.js';
import type { IdentityPolicy } from '../keyless/identity.js';
import type { SigstoreTrustedRoot } from '../keyless/trusted-root.js';
import type { KeyValidity } from '../keys/validity.js';
import type { SignatureVerifier } from '../signature/verifier.js';

/** What was fetched for one reference; nothing in it is trusted yet. */
export interface VerificationMaterial {
  ref: ArtifactRef;
  artifact: Uint8Array;
  /** The `.sig` file's content (base64 or raw DER); undefined when there is none. */
  signature?: Uint8Array | undefined;
  /** The `.sigstore.json` bundle; undefined when there is none. */
  bundle?: Uint8Array | undefined;
  /** The attestation bundles beside the artifact (`.wasm.sbom.sigstore.json`, `.wasm.provenance.sigstore.json`). */
  attestations?: { sbom?: Uint8Array | undefined; provenance?: Uint8Array | undefined } | undefined;
}

/** A key trusted to sign artifacts: the runbook's public key, or a signer a targets role names. */
export interface TrustedSigner {
  /** Hex SHA-256 of the key's SPKI DER. */
  keyId: string;
  verifier: SignatureVerifier;
  /**
   * The key's validity window in the trust policy (a retired key has an end). Judged at the
   * bundle's trusted time (RFC 3161 timestamp or Rekor integrated time, verified against
   * `VerificationPolicy.trustedRoot`), never the signer's own claim; without one, at now.
   */
  validity?: KeyValidity | undefined;
}

/**
 * Runbook mode: the artifact is trusted if a configured key (APX_PUBLIC_KEY: a file, Secret
 * Manager or a KMS/HSM key) signed it. No approvals, no revocation, no freshness: those need
 * the trust repository (TufTrust).
 */
export interface KeysTrust {
  kind: 'keys';
  signers: readonly TrustedSigner[];
  /** Identities trusted to sign keylessly (Fulcio certificate, Rekor entry). */
  identities?: readonly IdentityPolicy[] | undefined;
}

/** Runbook trust in one key. */
export function keysTrust(verifier: SignatureVerifier): KeysTrust {
  return { kind: 'keys', signers: [{ keyId: verifier.publicKey.keyId, verifier }] };
}

/** A signer the environment's TUF targets role trusts for its targets. */
export type TufSigner = TrustedSigner;

/**
 * The environment's signed TUF targets role, as plain data the TUF client already verified
 * (root → timestamp → snapshot → targets); this verifier only consumes it.
 */
export interface TufTrust {
  kind: 'tuf';
  environment: string;
  /** The target for this reference; undefined when the environment does not approve it. */
  target: { length: number; sha256: string } | undefined;
  signers: readonly TufSigner[];
  /** Identities the environment trusts to sign keylessly (Fulcio certificate, Rekor entry). */
  identities?: readonly IdentityPolicy[] | undefined;
  /** Versions of this policy the targets role names explicitly: each may load below the rollback floor. */
  namedVersions: ReadonlySet<string>;
  /** What the environment requires of the artifact's attestations (its role's `apx.attestations`). */
  attestations?: AttestationRequirements | undefined;
}

export type TrustInForce = KeysTrust | TufTrust;

/** The allow-list in force (the worker's AllowList): admits a version or says why not. */
export interface VersionAllowList {
  admits(policyId: string, version: string): boolean;
  /** The runbook's rejection, `policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]`. */
  rejection(policyId: string, version: string): Error;
}

export interface VerificationPolicy {
  /** The environment the caller runs in (dev, staging, production). */
  environment: string;
  /** Refuse an artifact without a signature. Off only in development. */
  strict: boolean;
  /** Refuse an artifact without a signed binding statement naming it for this environment. */
  requireBinding: boolean;
  allowList?: VersionAllowList | undefined;
  /** Size cap in bytes; defaults to the runbook's 10 MiB. */
  maxBytes?: number | undefined;
  /** Clock, for the keyring's validity windows and verifiedAt. */
  now?: (() => Date) | undefined;
  /**
   * The Sigstore trusted root that keyless bundles, and the timestamps that date keyed
   * signatures, are verified against (offline: loaded once by the caller). Keyless bundles
   * fall back to the public-good root embedded in @sigstore/tuf when it is absent.
   */
  trustedRoot?: SigstoreTrustedRoot | undefined;
}

/** What the caller remembers between verifications. */
export interface VerificationState {
  /** The highest version verified for this policy (the rollback floor). */
  floor?: string | undefined;
  /** The operator named this exact reference for a deliberate rollback (APX_ALLOW_ROLLBACK). */
  allowRollback?: boolean | undefined;
  /**
   * True when these bytes with this signature material failed signature verification before.
   * `signatureDigest` is signatureMaterialDigest(signature, bundle).
   */
  blocked?: ((digest: string, signatureDigest: string) => boolean) | undefined;
}

export interface VerificationInput {
  material: VerificationMaterial;
  trust: TrustInForce;
  policy: VerificationPolicy;
  state?: VerificationState | undefined;
}
