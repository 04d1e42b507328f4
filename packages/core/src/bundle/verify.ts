import { type DigestAlgorithm, digest } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { runSigstore, type TrustedTime, toEntity, withDigestSignature } from '../keyless/sigstore-run.js';
import { loadTrustedRoot, type SigstoreTrustedRoot } from '../keyless/trusted-root.js';
import { checkKeyValidity, type KeyValidity } from '../keys/validity.js';
import type { SignatureVerifier } from '../signature/verifier.js';
import { dssePreAuthEncoding } from './pae.js';
import type { ParsedBundle } from './parse.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
/** The statement type cosign attest-blob wrote before in-toto v1 (same fields). */
export const IN_TOTO_STATEMENT_V01 = 'https://in-toto.io/Statement/v0.1';

/**
 * The artifact's digest in place of its bytes (`sha256:<hex>`, cosign's and the Sigstore
 * conformance protocol's digest form).
 */
export interface ArtifactDigest {
  algorithm: DigestAlgorithm;
  digest: Buffer;
}

/** What is verified: the artifact's bytes, or its digest. */
export type ArtifactInput = Uint8Array | ArtifactDigest;

export function isArtifactDigest(input: ArtifactInput): input is ArtifactDigest {
  return !(input instanceof Uint8Array);
}

/** The artifact's digest with `algorithm`, computed or given; undefined when a digest of another algorithm was given. */
export function artifactDigest(input: ArtifactInput, algorithm: DigestAlgorithm): Buffer | undefined {
  if (!isArtifactDigest(input)) return digest(algorithm, input);
  return input.algorithm === algorithm ? input.digest : undefined;
}

export interface BundleVerifyOptions {
  /**
   * A Sigstore trusted root (trusted_root.json, parsed, or loaded with loadTrustedRoot).
   * When given, transparency-log entries and timestamps in the bundle are verified against it
   * with @sigstore/verify, and one log entry is required unless `requireTlog` is false
   * (timestamps are verified when present, not required: a key is not dated like a
   * certificate). When absent, verification is offline, by key only, like
   * `cosign verify-blob --key --insecure-ignore-tlog`.
   */
  trustedRoot?: unknown;
  /** With a trusted root: require a transparency-log entry (default true; false = TSA time alone suffices). */
  requireTlog?: boolean;
  /**
   * The key's validity window in the trust policy. It is judged at the bundle's verified
   * times (RFC 3161 timestamps, Rekor integrated times), never at the signing time the
   * signer writes into its statement; without a verified time, at `now`.
   */
  keyValidity?: KeyValidity;
  now?: Date;
}

export interface BundleVerification {
  format: ParsedBundle['format'];
  /** Transparency-log entries checked against a trusted root (0 when offline). */
  tlogEntriesVerified: number;
  /** Entries present in the bundle but not checked, because no trusted root was given. */
  tlogEntriesUnchecked: number;
  /** The in-toto statement, for DSSE bundles. */
  statement?: Record<string, unknown>;
  /** Times the bundle proves and that verified against the trusted root (only with a trusted root). */
  trustedTimes?: TrustedTime[];
}

const MISMATCH_HINT = 'this bundle belongs to another artifact or version; use the bundle written beside this artifact';

/**
 * Checks that the signed content names this artifact: the message digest, or the in-toto
 * statement's subject digest. @sigstore/verify never compares messageDigest with the
 * artifact when there is no tlog entry, and never reads a DSSE statement's subjects.
 * Returns the statement for DSSE bundles (whose signature must already be verified).
 */
export function checkSignedContent(
  parsed: ParsedBundle & { format: 'sigstore' },
  artifact: ArtifactInput,
): Record<string, unknown> | undefined {
  const content = parsed.content;
  if (content.kind === 'message') {
    if (!content.digest) {
      if (isArtifactDigest(artifact)) {
        throw new VerificationError(CoreErrorCode.BUNDLE_INVALID, 'invalid bundle: the message signature names no digest', {
          hint: 'pass the file itself instead of its digest',
        });
      }
      return undefined;
    }
    const alg = content.digest.algorithm;
    const actual = artifactDigest(artifact, alg);
    if (actual === undefined) {
      throw new VerificationError(
        CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
        `bundle digest does not match the artifact: the bundle names a ${alg} digest, a ${(artifact as ArtifactDigest).algorithm} digest was given`,
        { hint: `pass the file itself, or its ${alg} digest` },
      );
    }
    if (!actual.equals(content.digest.value)) {
      throw new VerificationError(
        CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
        `bundle digest does not match the artifact: bundle has ${alg}:${content.digest.value.toString('hex')}, artifact is ${alg}:${actual.toString('hex')}`,
        { hint: MISMATCH_HINT },
      );
    }
    return undefined;
  }
  const sha256 = artifactDigest(artifact, 'sha256');
  if (sha256 === undefined) {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
      'bundle statement does not match the artifact: in-toto subjects are matched by sha256',
      {
        hint: 'pass the file itself, or sha256:<hex>',
      },
    );
  }
  return checkStatement(content.payloadType, content.payload, sha256.toString('hex'));
}

/**
 * Verifies a bundle over an artifact with one trusted key, in a fixed order:
 * 1. the signed content names this artifact (message digest, or in-toto subject digest),
 * 2. the signature verifies with the key (same rules as a detached .sig),
 * 3. with a trusted root, transparency-log and timestamp evidence verifies too,
 * 4. the key's validity window holds at the bundle's trusted times (or now, without one).
 */
export function verifyBundle(
  parsed: ParsedBundle,
  artifact: ArtifactInput,
  verifier: SignatureVerifier,
  options: BundleVerifyOptions = {},
): BundleVerification {
  const now = options.now ?? new Date();
  if (parsed.format === 'cosign-legacy') {
    if (isArtifactDigest(artifact)) verifier.verifyDigest(artifact.algorithm, artifact.digest, parsed.signature);
    else verifier.verify(artifact, parsed.signature);
    if (options.keyValidity) checkKeyValidity(verifier.publicKey.keyId, options.keyValidity, [], now);
    return { format: parsed.format, tlogEntriesVerified: 0, tlogEntriesUnchecked: parsed.hasRekorBundle ? 1 : 0 };
  }

  let statement: Record<string, unknown> | undefined;
  const content = parsed.content;
  if (content.kind === 'message') {
    checkSignedContent(parsed, artifact);
    if (isArtifactDigest(artifact)) verifier.verifyDigest(artifact.algorithm, artifact.digest, content.signature);
    else verifier.verify(artifact, content.signature);
  } else {
    // DSSE: the signature is over PAE(type, payload); verify before parsing (DSSE protocol).
    verifier.verify(dssePreAuthEncoding(content.payloadType, content.payload), content.signature);
    statement = checkSignedContent(parsed, artifact);
  }

  let tlogEntriesVerified = 0;
  let trustedTimes: TrustedTime[] | undefined;
  if (options.trustedRoot !== undefined) {
    trustedTimes = verifyTransparency(
      parsed,
      artifact,
      verifier,
      asTrustedRoot(options.trustedRoot),
      options.requireTlog ?? true,
      now,
    );
    tlogEntriesVerified = parsed.tlogEntries;
  }
  if (options.keyValidity) checkKeyValidity(verifier.publicKey.keyId, options.keyValidity, trustedTimes ?? [], now);
  const result: BundleVerification = {
    format: parsed.format,
    tlogEntriesVerified,
    tlogEntriesUnchecked: parsed.tlogEntries - tlogEntriesVerified,
  };
  if (statement) result.statement = statement;
  if (trustedTimes) result.trustedTimes = trustedTimes;
  return result;
}

/** A trusted root given as JSON or already loaded. */
export function asTrustedRoot(root: unknown): SigstoreTrustedRoot {
  if (typeof root === 'object' && root !== null && 'root' in root && 'source' in root) return root as SigstoreTrustedRoot;
  return loadTrustedRoot(root);
}

export function checkStatement(payloadType: string, payload: Buffer, sha256: string): Record<string, unknown> {
  const mismatch = (why: string) =>
    new VerificationError(CoreErrorCode.BUNDLE_DIGEST_MISMATCH, `bundle statement does not match the artifact: ${why}`, {
      hint: MISMATCH_HINT,
    });
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new VerificationError(CoreErrorCode.BUNDLE_INVALID, `invalid bundle: unsupported DSSE payload type ${payloadType}`, {
      hint: `APX verifies DSSE bundles carrying in-toto statements (${IN_TOTO_PAYLOAD_TYPE})`,
    });
  }
  let statement: unknown;
  try {
    statement = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new VerificationError(CoreErrorCode.BUNDLE_INVALID, 'invalid bundle: the in-toto statement is not JSON', {
      cause: err,
    });
  }
  const s = statement as { _type?: unknown; subject?: unknown };
  // v0.1 has v1's fields (subject, predicateType, predicate): cosign attest-blob still writes it.
  const known = s._type === IN_TOTO_STATEMENT_V1 || s._type === IN_TOTO_STATEMENT_V01;
  if (typeof statement !== 'object' || statement === null || !known || !Array.isArray(s.subject)) {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_INVALID,
      'invalid bundle: the payload is not an in-toto Statement (v1 or v0.1)',
    );
  }
  const subjects = s.subject as Array<{ digest?: Record<string, unknown> }>;
  // in-toto matches subjects by digest only; names are informational.
  if (!subjects.some((sub) => sub?.digest?.sha256 === sha256)) {
    throw mismatch(`no subject has sha256:${sha256}`);
  }
  return statement as Record<string, unknown>;
}

/**
 * The bundle's log entries and timestamps, verified with @sigstore/verify against the
 * trusted root; the key is the one given (cosign ignores the bundle's hint when --key is
 * given, and so does APX). Returns the verified times.
 */
function verifyTransparency(
  parsed: ParsedBundle & { format: 'sigstore' },
  artifact: ArtifactInput,
  verifier: SignatureVerifier,
  root: SigstoreTrustedRoot,
  requireTlog: boolean,
  now: Date,
): TrustedTime[] {
  if (parsed.bundle.verificationMaterial.content.$case !== 'publicKey') {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_INVALID,
      'invalid bundle: it carries a certificate, not a key hint; verify it keylessly (without --key) with --certificate-identity and --certificate-oidc-issuer',
    );
  }
  const key = verifier.publicKey.keyObject;
  let entity = toEntity(parsed.bundle, isArtifactDigest(artifact) ? undefined : Buffer.from(artifact));
  if (isArtifactDigest(artifact) && parsed.content.kind === 'message')
    entity = withDigestSignature(entity, artifact.algorithm, artifact.digest);
  return runSigstore(entity, {
    trustedRoot: root,
    keys: () => ({ publicKey: key, validFor: () => true }),
    tlogThreshold: requireTlog ? 1 : 0,
    ctlogThreshold: 0,
    // A key has no validity period of its own to date against (unlike a Fulcio certificate):
    // the timestamps a bundle carries are all verified, but none is required. A log entry
    // proven only by an inclusion proof (no SET, no RFC 3161 token) verifies, as in the
    // Sigstore client spec; a trust-policy window on the key is then judged at `now`.
    timestampThreshold: 0,
    now,
  }).trustedTimes;
}
