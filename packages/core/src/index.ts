// The trust core: everything a worker must trust to decide whether bytes may run.

export {
  type ArtifactRef,
  artifactFileName,
  formatArtifactRef,
  isPolicyId,
  isSemver,
  parseArtifactRef,
} from './artifact/ref.js';
export {
  type ArtifactTrust,
  assertVerifiedArtifact,
  isVerifiedArtifact,
  MAX_ARTIFACT_BYTES,
  type VerifiedArtifact,
  type VerifiedAttestations,
} from './artifact/verified-artifact.js';
export {
  type Advisory,
  type AttestationRequirements,
  affectingAdvisory,
  attestationRequirementsJson,
  bomComponents,
  deniedComponent,
  parseAttestationRequirements,
  requiredKinds,
  requiresNothing,
  vexAdvisories,
  vulnerableComponent,
} from './attestation/requirements.js';
export {
  ATTESTATION_KINDS,
  type AttestationKind,
  attestationFileName,
  attestationStatement,
  COSIGN_PREDICATE_TYPES,
  CYCLONEDX_PREDICATE_TYPE,
  predicateOf,
  predicateTypeOf,
  SLSA_PROVENANCE_V1_PREDICATE_TYPE,
} from './attestation/statement.js';
export { decodeStdBase64 } from './base64.js';
export {
  type ArtifactBinding,
  type BindingExpectation,
  bindingStatement,
  checkBinding,
  POLICY_PREDICATE_TYPE,
  readBinding,
} from './binding/statement.js';
export {
  isKeylessBundle,
  type KeylessVerification,
  type KeylessVerifyOptions,
  verifyKeylessBundle,
} from './bundle/keyless.js';
export { dssePreAuthEncoding } from './bundle/pae.js';
export type { ParsedBundle } from './bundle/parse.js';
export { parseBundle } from './bundle/parse.js';
export type { ArtifactDigest, ArtifactInput, BundleVerification, BundleVerifyOptions } from './bundle/verify.js';
export {
  artifactDigest,
  IN_TOTO_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_V1,
  IN_TOTO_STATEMENT_V01,
  isArtifactDigest,
  verifyBundle,
} from './bundle/verify.js';
export { crc32c } from './crc32c.js';
export {
  type DigestAlgorithm,
  digest,
  digestFromSigstoreName,
  parseDigestAlgorithm,
  sha256Hex,
  sigstoreHashName,
} from './digest.js';
export { ENVIRONMENTS, type Environment } from './environment.js';
export {
  ApxError,
  type ApxErrorOptions,
  CoreErrorCode,
  isApxError,
  isVerificationError,
  VerificationError,
} from './error.js';
export {
  type CertificateIdentity,
  certificateIdentity,
  compileAnchoredPattern,
  describeIdentityPolicy,
  type IdentityMatcher,
  type IdentityPolicy,
  type IdentityPolicyJson,
  identityMismatch,
  identityPolicyJson,
  matchIdentity,
  parseIdentityPolicy,
} from './keyless/identity.js';
export {
  loadTrustedRoot,
  PUBLIC_GOOD_TUF_URL,
  publicGoodTrustedRoot,
  type SigstoreTrustedRoot,
} from './keyless/trusted-root.js';
export { checkKey, defaultDigestFor, type KeyAlgorithm, type KeyCheck } from './keys/key-policy.js';
export { decodeFirstPem, encodePem, type PemBlock } from './keys/pem.js';
export { PublicKey } from './keys/public-key.js';
export { checkKeyValidity, type KeyValidity, type VerifiedTime } from './keys/validity.js';
export { decodeSignatureFile, ecdsaSignatureToDer, p1363ToDer } from './signature/encoding.js';
export { SignatureVerifier, type SignatureVerifierOptions } from './signature/verifier.js';
export * from './verify/index.js';
export * from './wasm/index.js';
