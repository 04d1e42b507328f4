import type { DigestAlgorithm, PublicKey } from '@apx/core';

/** One signature and the key material that verifies it. */
export interface SignatureResult {
  /** DER for ECDSA, PKCS#1 v1.5 bytes for RSA, 64 bytes for Ed25519. */
  signature: Buffer;
  /** The digest the signature covers; null for pure Ed25519 (it signs the message). */
  digestAlgorithm: DigestAlgorithm | null;
  publicKey: PublicKey;
}

/**
 * The one role every key custody plays (file, KMS, HSM): sign a message. Asynchronous so
 * that remote signers fit; the message is the whole blob, each signer hashes as it must.
 */
export interface Signer {
  /** Where the key lives, safe to log: a path or URI without secrets. */
  readonly keyRef: string;
  publicKey(): Promise<PublicKey>;
  sign(message: Uint8Array): Promise<SignatureResult>;
  /** Releases a connection or session (KMS clients, HSM sessions); file keys hold none. */
  close?(): Promise<void>;
}
