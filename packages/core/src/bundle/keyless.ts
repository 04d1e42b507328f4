import type { KeyObject } from 'node:crypto';
import { CoreErrorCode, VerificationError } from '../error.js';
import { type CertificateIdentity, certificateIdentity, type IdentityPolicy, matchIdentity } from '../keyless/identity.js';
import { runSigstore, type TrustedTime, toEntity, withDigestSignature } from '../keyless/sigstore-run.js';
import type { SigstoreTrustedRoot } from '../keyless/trusted-root.js';
import type { ParsedBundle } from './parse.js';
import { type ArtifactInput, checkSignedContent, isArtifactDigest } from './verify.js';

export interface KeylessVerifyOptions {
  /** The trusted root: a user's trusted_root.json (loadTrustedRoot) or publicGoodTrustedRoot(). */
  trustedRoot: SigstoreTrustedRoot;
  /** The identities trusted to sign; the certificate must satisfy one of them. */
  identities: readonly IdentityPolicy[];
}

export interface KeylessVerification {
  format: 'sigstore';
  /** What the verified certificate says about its holder. */
  identity: CertificateIdentity;
  /** The trusted identity the certificate satisfied. */
  matched: IdentityPolicy;
  /** The certificate's public key (verified), e.g. to check a detached .sig made with it. */
  publicKey: KeyObject;
  /** Verified times (Rekor integrated time under a SET, RFC 3161 timestamps). */
  trustedTimes: TrustedTime[];
  tlogEntriesVerified: number;
  /** The in-toto statement, for DSSE bundles. */
  statement?: Record<string, unknown>;
}

/** True when the bundle is signed with a certificate (keyless), not a key hint. */
export function isKeylessBundle(parsed: ParsedBundle): boolean {
  return parsed.format === 'sigstore' && parsed.bundle.verificationMaterial.content.$case !== 'publicKey';
}

/**
 * Verifies a keyless bundle offline, in a fixed order:
 * 1. the signed content names this artifact (message digest or in-toto subject digest);
 * 2. @sigstore/verify, against the trusted root: every timestamp (RFC 3161 tokens; Rekor
 *    SETs), the certificate chain to a trusted Fulcio CA at each verified time, at least one
 *    SCT from a trusted CT log, every Rekor entry (SET, or inclusion proof with a signed
 *    checkpoint, Rekor v2 included) and its body, then the signature with the certificate's key;
 *    every trust-root entry used must be within its validity window at the bundle's time;
 * 3. the certificate's identity (issuer, subject, Fulcio extensions) satisfies a trusted one.
 * Each failure has its own code and message (keyless/sigstore-run.ts).
 */
export function verifyKeylessBundle(
  parsed: ParsedBundle,
  artifact: ArtifactInput,
  options: KeylessVerifyOptions,
): KeylessVerification {
  if (parsed.format !== 'sigstore' || !isKeylessBundle(parsed)) {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_INVALID,
      'invalid bundle: it carries no certificate, so it cannot be verified keylessly',
      {
        hint: 'a bundle signed with a key is verified with --key',
      },
    );
  }
  if (options.identities.length === 0) {
    throw new VerificationError(CoreErrorCode.IDENTITY_POLICY_INVALID, 'no identity is trusted to sign keylessly', {
      hint: 'name the signer with --certificate-identity and --certificate-oidc-issuer (or their -regexp forms)',
    });
  }
  // Message signatures: the digest is compared first. DSSE: the statement is read only
  // after its envelope verified (DSSE protocol: verify, then parse).
  if (parsed.content.kind === 'message') checkSignedContent(parsed, artifact);
  if (parsed.tlogEntries === 0) {
    throw new VerificationError(
      CoreErrorCode.TLOG_INVALID,
      'transparency log entry missing: a keyless bundle must carry a Rekor entry',
      { hint: 'sign with a transparency log (Rekor); keyless signatures are only trusted once logged' },
    );
  }
  let entity = toEntity(parsed.bundle, isArtifactDigest(artifact) ? undefined : Buffer.from(artifact));
  if (isArtifactDigest(artifact) && parsed.content.kind === 'message') {
    entity = withDigestSignature(entity, artifact.algorithm, artifact.digest);
  }
  const { signer, trustedTimes } = runSigstore(entity, {
    trustedRoot: options.trustedRoot,
    tlogThreshold: 1,
    ctlogThreshold: 1,
    timestampThreshold: 1,
  });
  const statement = parsed.content.kind === 'dsse' ? checkSignedContent(parsed, artifact) : undefined;
  const identity = certificateIdentity(signer.identity ?? {});
  const matched = matchIdentity(options.identities, identity);
  const result: KeylessVerification = {
    format: 'sigstore',
    identity,
    matched,
    publicKey: signer.key,
    trustedTimes,
    tlogEntriesVerified: parsed.tlogEntries,
  };
  if (statement) result.statement = statement;
  return result;
}
