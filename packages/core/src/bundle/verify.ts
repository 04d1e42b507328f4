import { createRequire } from 'node:module';
import { dsse } from '@sigstore/core';
import { digest } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { SignatureVerifier } from '../signature/verifier.js';
import type { ParsedBundle } from './parse.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';

export interface BundleVerifyOptions {
  /**
   * A Sigstore trusted root (trusted_root.json, parsed). When given, transparency-log
   * entries and timestamps in the bundle are verified against it with @sigstore/verify and
   * at least one of each is required. When absent, verification is offline, by key only,
   * like `cosign verify-blob --key --insecure-ignore-tlog`.
   */
  trustedRoot?: unknown;
}

export interface BundleVerification {
  format: ParsedBundle['format'];
  /** Transparency-log entries checked against a trusted root (0 when offline). */
  tlogEntriesVerified: number;
  /** Entries present in the bundle but not checked, because no trusted root was given. */
  tlogEntriesUnchecked: number;
  /** The in-toto statement, for DSSE bundles. */
  statement?: Record<string, unknown>;
}

/**
 * Verifies a bundle over an artifact with one trusted key, in a fixed order:
 * 1. the signed content names this artifact (message digest, or in-toto subject digest),
 * 2. the signature verifies with the key (same rules as a detached .sig),
 * 3. with a trusted root, transparency-log and timestamp evidence verifies too.
 * Step 1 closes a gap @sigstore/verify leaves open when there is no tlog entry: it never
 * compares messageDigest with the artifact.
 */
export function verifyBundle(
  parsed: ParsedBundle,
  artifact: Uint8Array,
  verifier: SignatureVerifier,
  options: BundleVerifyOptions = {},
): BundleVerification {
  if (parsed.format === 'cosign-legacy') {
    verifier.verify(artifact, parsed.signature);
    return { format: parsed.format, tlogEntriesVerified: 0, tlogEntriesUnchecked: parsed.hasRekorBundle ? 1 : 0 };
  }

  let statement: Record<string, unknown> | undefined;
  const content = parsed.content;
  if (content.kind === 'message') {
    if (content.digest) {
      const actual = digest(content.digest.algorithm, artifact);
      if (!actual.equals(content.digest.value)) {
        const alg = content.digest.algorithm;
        throw new VerificationError(
          CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
          `bundle digest does not match the artifact: bundle has ${alg}:${content.digest.value.toString('hex')}, artifact is ${alg}:${actual.toString('hex')}`,
          { hint: 'this bundle belongs to another artifact or version; use the bundle written beside this artifact' },
        );
      }
    }
    verifier.verify(artifact, content.signature);
  } else {
    // DSSE: the signature is over PAE(type, payload); verify before parsing (DSSE protocol).
    verifier.verify(dsse.preAuthEncoding(content.payloadType, content.payload), content.signature);
    statement = checkStatement(content.payloadType, content.payload, artifact);
  }

  let tlogEntriesVerified = 0;
  if (options.trustedRoot !== undefined) {
    verifyTransparency(parsed, artifact, verifier, options.trustedRoot);
    tlogEntriesVerified = parsed.tlogEntries;
  }
  const result: BundleVerification = {
    format: parsed.format,
    tlogEntriesVerified,
    tlogEntriesUnchecked: parsed.tlogEntries - tlogEntriesVerified,
  };
  if (statement) result.statement = statement;
  return result;
}

function checkStatement(payloadType: string, payload: Buffer, artifact: Uint8Array): Record<string, unknown> {
  const mismatch = (why: string) =>
    new VerificationError(CoreErrorCode.BUNDLE_DIGEST_MISMATCH, `bundle statement does not match the artifact: ${why}`, {
      hint: 'this bundle belongs to another artifact or version; use the bundle written beside this artifact',
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
  if (typeof statement !== 'object' || statement === null || s._type !== IN_TOTO_STATEMENT_V1 || !Array.isArray(s.subject)) {
    throw new VerificationError(CoreErrorCode.BUNDLE_INVALID, 'invalid bundle: the payload is not an in-toto Statement v1');
  }
  const want = digest('sha256', artifact).toString('hex');
  const subjects = s.subject as Array<{ digest?: Record<string, unknown> }>;
  // in-toto matches subjects by digest only; names are informational.
  if (!subjects.some((sub) => sub?.digest?.sha256 === want)) {
    throw mismatch(`no subject has sha256:${want}`);
  }
  return statement as Record<string, unknown>;
}

// @sigstore/verify (with its trust-root machinery) is needed only when a trusted root is
// given; it is CommonJS, so it loads synchronously here, on first use, keeping every
// other start-up (CLI, worker) free of it.
type SigstoreVerify = typeof import('@sigstore/verify');
type ProtobufSpecs = typeof import('@sigstore/protobuf-specs');
const lazyRequire = createRequire(import.meta.url);

function verifyTransparency(
  parsed: ParsedBundle & { format: 'sigstore' },
  artifact: Uint8Array,
  verifier: SignatureVerifier,
  root: unknown,
): void {
  const { toSignedEntity, toTrustMaterial, Verifier } = lazyRequire('@sigstore/verify') as SigstoreVerify;
  const { TrustedRoot } = lazyRequire('@sigstore/protobuf-specs') as ProtobufSpecs;
  let trustedRoot: ReturnType<typeof TrustedRoot.fromJSON>;
  try {
    trustedRoot = TrustedRoot.fromJSON(root);
  } catch (err) {
    throw new VerificationError(CoreErrorCode.BUNDLE_VERIFICATION_FAILED, 'invalid trusted root: not a Sigstore TrustedRoot', {
      cause: err,
    });
  }
  const key = verifier.publicKey.keyObject;
  // cosign ignores the hint when a key is given (--key wins); so does APX.
  const trust = toTrustMaterial(trustedRoot, () => ({ publicKey: key, validFor: () => true }));
  try {
    new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 1 }).verify(
      toSignedEntity(parsed.bundle, parsed.content.kind === 'message' ? Buffer.from(artifact) : undefined),
    );
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = err instanceof Error ? err.message : String(err);
    throw new VerificationError(
      CoreErrorCode.BUNDLE_VERIFICATION_FAILED,
      `transparency log verification failed: ${typeof code === 'string' ? `${code} ` : ''}${why}`,
      { hint: 'check that --trusted-root is the root of the log this bundle was recorded in', cause: err },
    );
  }
}
