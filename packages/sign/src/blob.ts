import { type DigestAlgorithm, digest, type PublicKey } from '@apx/core';
import { type BundleWithMessageSignature, bundleToJSON, toMessageSignatureBundle } from '@sigstore/bundle';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import type { Signer } from './signer/signer.js';

const HASH_ENUM: Record<DigestAlgorithm, HashAlgorithm> = {
  sha256: HashAlgorithm.SHA2_256,
  sha384: HashAlgorithm.SHA2_384,
  sha512: HashAlgorithm.SHA2_512,
};

export interface BlobSignature {
  /** The raw signature (DER for ECDSA). */
  signature: Buffer;
  /** What goes in a `.sig` file: base64, no trailing newline (as cosign writes it). */
  signatureFileContent: string;
  /** A Sigstore bundle v0.3 with a message signature and no transparency-log entry. */
  bundleJson: string;
  publicKey: PublicKey;
}

/**
 * `cosign sign-blob --key`: one signature over the blob, serialized both as a detached
 * `.sig` and as an offline Sigstore bundle whose `publicKey.hint` is the APX key id.
 */
export async function signBlob(signer: Signer, blob: Uint8Array): Promise<BlobSignature> {
  const result = await signer.sign(blob);
  // Pure Ed25519 has no digest of its own; the bundle still records SHA-256 of the blob.
  const alg = result.digestAlgorithm ?? 'sha256';
  const bundle: BundleWithMessageSignature = toMessageSignatureBundle({
    digest: digest(alg, blob),
    signature: result.signature,
    keyHint: result.publicKey.keyId,
    certificateChain: false,
  });
  if (bundle.content.messageSignature.messageDigest) bundle.content.messageSignature.messageDigest.algorithm = HASH_ENUM[alg];
  return {
    signature: result.signature,
    signatureFileContent: result.signature.toString('base64'),
    bundleJson: JSON.stringify(bundleToJSON(bundle)),
    publicKey: result.publicKey,
  };
}
