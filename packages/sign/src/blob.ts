import { type DigestAlgorithm, digest, type PublicKey } from '@apx/core';
import type { BundleWithMessageSignature } from '@sigstore/bundle';
import type { HashAlgorithm } from '@sigstore/protobuf-specs';
import type { Witness } from '@sigstore/sign';
import { isKeyless, type SigningIdentity } from './keyless.js';
import type { Signer } from './signer/signer.js';
import { protobufSpecs, sigstoreBundle } from './sigstore-libs.js';
import { witnessBundle } from './witness.js';

/** protobuf-specs' enum value for a digest algorithm. */
function hashEnum(alg: DigestAlgorithm): HashAlgorithm {
  const { HashAlgorithm } = protobufSpecs();
  return { sha256: HashAlgorithm.SHA2_256, sha384: HashAlgorithm.SHA2_384, sha512: HashAlgorithm.SHA2_512 }[alg];
}

export interface BlobSignature {
  /** The raw signature (DER for ECDSA). */
  signature: Buffer;
  /** What goes in a `.sig` file: base64, no trailing newline (as cosign writes it). */
  signatureFileContent: string;
  /** A Sigstore bundle v0.3 with a message signature and no transparency-log entry. */
  bundleJson: string;
  publicKey: PublicKey;
  /** Keyless signing: the Fulcio certificate (PEM, as cosign's --output-certificate) and the identity it names. */
  certificatePem?: string;
  identity?: SigningIdentity;
}

export interface SignOptions {
  /**
   * Witnesses that testify to the signature, their evidence added to the bundle: a Rekor
   * entry (keyless), an RFC 3161 timestamp (keyless or keyed: trusted time for the key's window).
   */
  witnesses?: readonly Witness[];
}

/**
 * `cosign sign-blob`: one signature over the blob, serialized both as a detached `.sig` and
 * as a Sigstore bundle v0.3: with a key, `publicKey.hint` is the APX key id; keyless, the
 * bundle carries the Fulcio certificate. Witnesses add a Rekor entry or a timestamp.
 */
export async function signBlob(signer: Signer, blob: Uint8Array, options: SignOptions = {}): Promise<BlobSignature> {
  const result = await signer.sign(blob);
  const cert = isKeyless(signer) ? await signer.certificate() : undefined;
  // Pure Ed25519 has no digest of its own; the bundle still records SHA-256 of the blob.
  const alg = result.digestAlgorithm ?? 'sha256';
  const { bundleToJSON, toMessageSignatureBundle } = sigstoreBundle();
  const bundle: BundleWithMessageSignature = toMessageSignatureBundle({
    digest: digest(alg, blob),
    signature: result.signature,
    ...(cert ? { certificate: cert.der } : { keyHint: result.publicKey.keyId }),
    certificateChain: false,
  });
  if (bundle.content.messageSignature.messageDigest) bundle.content.messageSignature.messageDigest.algorithm = hashEnum(alg);
  await witnessBundle(bundle, cert ? cert.pem : publicKeyPem(result.publicKey), options.witnesses ?? []);
  return {
    signature: result.signature,
    signatureFileContent: result.signature.toString('base64'),
    bundleJson: JSON.stringify(bundleToJSON(bundle)),
    publicKey: result.publicKey,
    ...(cert ? { certificatePem: cert.pem, identity: cert.identity } : {}),
  };
}

/** A public key as PEM (SPKI), what witnesses are given for keyed signatures. */
export function publicKeyPem(key: PublicKey): string {
  return key.keyObject.export({ type: 'spki', format: 'pem' }).toString();
}
