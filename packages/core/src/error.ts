/**
 * The closed set of error codes of the trust core. Codes are API (metric labels, tests,
 * scripts match on them); messages are for people and follow the runbook's wording.
 */
export const CoreErrorCode = {
  /** A signature that is well formed but does not verify: tampering or the wrong key. */
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  /** Signature bytes that are neither base64 nor DER/P1363, or DER with trailing bytes. */
  SIGNATURE_MALFORMED: 'SIGNATURE_MALFORMED',
  /** A public key that cannot be parsed (bad PEM, wrong PEM type, bad DER). */
  PUBLIC_KEY_INVALID: 'PUBLIC_KEY_INVALID',
  /** A key of a type or size APX (like cosign) refuses: P-224, RSA-1024, secp256k1... */
  KEY_UNSUPPORTED: 'KEY_UNSUPPORTED',
  /** A bundle that is not JSON or not a Sigstore / cosign bundle APX understands. */
  BUNDLE_INVALID: 'BUNDLE_INVALID',
  /** A bundle whose message digest is not the digest of the artifact given. */
  BUNDLE_DIGEST_MISMATCH: 'BUNDLE_DIGEST_MISMATCH',
  /** Transparency-log or timestamp material in a bundle that does not verify. */
  BUNDLE_VERIFICATION_FAILED: 'BUNDLE_VERIFICATION_FAILED',
  /** A trusted_root.json that is not a Sigstore TrustedRoot, or has an entry without a start of validity. */
  TRUSTED_ROOT_INVALID: 'TRUSTED_ROOT_INVALID',
  /** The trust-root entry (CA, TSA, Rekor or CT log key) the bundle needs was not valid at the bundle's time. */
  TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY: 'TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY',
  /** A signing certificate that does not chain to a certificate authority of the trusted root. */
  CERTIFICATE_UNTRUSTED: 'CERTIFICATE_UNTRUSTED',
  /** A signing certificate (or a certificate of its chain) not valid at the signature's trusted time. */
  CERTIFICATE_EXPIRED: 'CERTIFICATE_EXPIRED',
  /** A signing certificate with no signed certificate timestamp, or one no trusted CT log signed. */
  SCT_INVALID: 'SCT_INVALID',
  /** A transparency-log entry that is missing, or whose proof, promise, checkpoint or body does not verify. */
  TLOG_INVALID: 'TLOG_INVALID',
  /** An RFC 3161 timestamp that does not verify against the trusted root, or no trusted time at all. */
  TIMESTAMP_INVALID: 'TIMESTAMP_INVALID',
  /** A certificate whose issuer, subject or Fulcio extensions the identity policy does not accept. */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  /** An identity policy that cannot be used (an unanchored pattern, an empty value...); refused on load. */
  IDENTITY_POLICY_INVALID: 'IDENTITY_POLICY_INVALID',
  /** A signing key used outside its validity window, judged at a trusted time (never the signer's claim). */
  KEY_OUTSIDE_VALIDITY: 'KEY_OUTSIDE_VALIDITY',
  /** No signature beside an artifact while strict mode is on. */
  SIGNATURE_MISSING: 'SIGNATURE_MISSING',
  /** A signed statement that names another policy, version or environment than the one loaded. */
  BINDING_MISMATCH: 'BINDING_MISMATCH',
  /** A bundle is required (staging, production) and there is none. */
  BINDING_MISSING: 'BINDING_MISSING',
  /** The trust repository withdrew its approval of a serving artifact (revoked, other bytes approved, signer removed). */
  REVOKED: 'REVOKED',
  /** A policy reference that is not `<policy-id>@<semver>`. */
  REF_INVALID: 'REF_INVALID',
  /** An artifact over the size cap (10 MiB by default). */
  ARTIFACT_TOO_LARGE: 'ARTIFACT_TOO_LARGE',
  /** An artifact that does not start with the WebAssembly magic and version. */
  ARTIFACT_NOT_WASM: 'ARTIFACT_NOT_WASM',
  /** An artifact with the magic bytes that WebAssembly.validate or compile rejects. */
  ARTIFACT_INVALID_WASM: 'ARTIFACT_INVALID_WASM',
  /** A verified module whose imports, exports, memory or metadata do not match the policy ABI. */
  ARTIFACT_ABI_MISMATCH: 'ARTIFACT_ABI_MISMATCH',
  /** A digest algorithm name APX does not know. */
  DIGEST_ALGORITHM_UNSUPPORTED: 'DIGEST_ALGORITHM_UNSUPPORTED',
  /** The version is not admitted by the allow-list (ALLOWED_POLICY_VERSIONS; the runbook's message). */
  VERSION_NOT_ALLOWED: 'VERSION_NOT_ALLOWED',
  /** A version below the highest verified for the policy (the rollback floor), not named for rollback. */
  ROLLBACK_REFUSED: 'ROLLBACK_REFUSED',
  /** These bytes with this signature material failed signature verification before. */
  DIGEST_BLOCKED: 'DIGEST_BLOCKED',
  /** The environment's signed TUF targets role does not approve this artifact (or names no signer). */
  NOT_APPROVED: 'NOT_APPROVED',
  /** The artifact's length or SHA-256 differs from the target the environment approved. */
  TARGET_MISMATCH: 'TARGET_MISMATCH',
  /** The module's embedded `apx.meta` names another policy or version than the reference loaded. */
  EMBEDDED_NAME_MISMATCH: 'EMBEDDED_NAME_MISMATCH',
  /** An attestation the environment requires (SBOM, provenance) is not beside the artifact. */
  ATTESTATION_MISSING: 'ATTESTATION_MISSING',
  /** An attestation that is malformed, of another predicate type, or not signed by a trusted signer. */
  ATTESTATION_INVALID: 'ATTESTATION_INVALID',
  /** A verified attestation whose content the environment's policy refuses (builder, source, compiler, component). */
  ATTESTATION_POLICY_VIOLATION: 'ATTESTATION_POLICY_VIOLATION',
  /** An SBOM names a component version a signed VEX document lists as affected and unresolved. */
  VULNERABLE_COMPONENT: 'VULNERABLE_COMPONENT',
  /** Something presented as a VerifiedArtifact that core's verifier did not make (forged or copied). */
  ARTIFACT_NOT_VERIFIED: 'ARTIFACT_NOT_VERIFIED',
} as const;
export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];

export interface ApxErrorOptions {
  /** What the user can do about it; the CLI prints it after the message. */
  hint?: string;
  cause?: unknown;
}

/**
 * Base of every APX error. Each package narrows `code` to its own closed set; the CLI
 * and the worker render `message` (the runbook's words) and `hint` without a stack trace.
 */
export class ApxError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly hint: string | undefined;

  constructor(code: Code, message: string, options: ApxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }
}

/**
 * Verdicts on a (bytes, signature material) pair that mark it as tampered: a worker refuses
 * the same pair on sight afterwards. Only the pair: genuine bytes that arrive later with a
 * genuine signature are a different pair and are verified normally.
 */
const PAIR_BLOCKING: ReadonlySet<CoreErrorCode> = new Set([
  CoreErrorCode.SIGNATURE_INVALID,
  CoreErrorCode.SIGNATURE_MALFORMED,
  CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
]);

export class VerificationError extends ApxError<CoreErrorCode> {
  override readonly name = 'VerificationError';
  /** True when callers must block the (digest, signature digest) pair that produced this verdict. */
  readonly blocksPair: boolean;

  constructor(code: CoreErrorCode, message: string, options: ApxErrorOptions = {}) {
    super(code, message, options);
    this.blocksPair = PAIR_BLOCKING.has(code);
  }
}

export function isVerificationError(err: unknown): err is VerificationError {
  return err instanceof VerificationError;
}

export function isApxError(err: unknown): err is ApxError {
  return err instanceof ApxError;
}
