import type { DigestAlgorithm, PublicKey } from '@apx/core';
import { KmsError, KmsErrorCode } from './error.js';

/** One signature from a key held outside the process, and the key material that verifies it. */
export interface KmsSignature {
  /** DER for ECDSA, PKCS#1 v1.5 bytes for RSA, 64 bytes for Ed25519. */
  signature: Buffer;
  /** The digest the signature covers; null for pure Ed25519 (it signs the message). */
  digestAlgorithm: DigestAlgorithm | null;
  publicKey: PublicKey;
}

/**
 * A key held by a KMS or an HSM. The process sees only its public key and signatures: the
 * message is hashed here and only the digest is sent (Ed25519 aside, which signs the message).
 * Shaped like @apx/sign's Signer so that every KmsKey is a Signer.
 */
export interface KmsKey {
  /** The reference, without secrets (a PKCS#11 PIN is dropped): safe to log and to audit. */
  readonly keyRef: string;
  /** The key version that signs, as the provider names it, where it has versions (for logs). */
  readonly version?: string;
  publicKey(): Promise<PublicKey>;
  sign(message: Uint8Array): Promise<KmsSignature>;
  /** Releases the connection or session. */
  close(): Promise<void>;
}

/**
 * Loads a client library that is an optional peer (cloud SDKs, the PKCS#11 binding) only
 * when its scheme is used, so that start-up does not pay for it; its absence is one line.
 */
export async function importClient<T>(specifier: string, scheme: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new KmsError(KmsErrorCode.CLIENT_MISSING, `${scheme} keys need the ${specifier} package, which is not installed`, {
        hint: `npm install ${specifier}`,
        cause: err,
      });
    }
    throw err;
  }
}
