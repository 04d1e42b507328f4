import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { DigestAlgorithm } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { defaultDigestFor, signatureFamilyName } from '../keys/key-policy.js';
import type { PublicKey } from '../keys/public-key.js';
import { decodeSignatureFile, ecdsaSignatureToDer } from './encoding.js';
import { verifyPrehashed } from './prehashed.js';

export interface SignatureVerifierOptions {
  /**
   * The digest the signature was made over. Defaults to the key's own (SHA-256 for P-256
   * and RSA, SHA-384 for P-384, SHA-512 for P-521), which is what cosign ≥ 2.6 signs with.
   * Ignored for Ed25519, which signs the message itself.
   */
  digestAlgorithm?: DigestAlgorithm;
}

/**
 * Verifies cosign-style signatures over whole messages with one trusted key. Pure and
 * synchronous: all parsing of the key happens once, in the constructor; `verify` does no
 * I/O and nothing but decode the signature and run one OpenSSL verification.
 */
export class SignatureVerifier {
  readonly publicKey: PublicKey;
  readonly digestAlgorithm: DigestAlgorithm | null;
  private readonly keyObject: KeyObject;
  private readonly isEcdsa: boolean;
  private readonly failure: string;

  constructor(publicKey: PublicKey, options: SignatureVerifierOptions = {}) {
    this.publicKey = publicKey;
    this.keyObject = publicKey.keyObject;
    const natural = defaultDigestFor(publicKey.algorithm);
    this.digestAlgorithm = natural === null ? null : (options.digestAlgorithm ?? natural);
    this.isEcdsa = publicKey.algorithm.startsWith('ecdsa');
    this.failure = `signature verification failed: ${signatureFamilyName(publicKey.algorithm)} signature verification failed`;
  }

  /**
   * Throws a VerificationError (SIGNATURE_INVALID or SIGNATURE_MALFORMED) unless
   * `signature` is this key's signature over `message`. `signature` is the content of a
   * signature file: base64 text (trailing newline allowed) or raw bytes.
   */
  verify(message: Uint8Array, signature: Uint8Array): void {
    const raw = decodeSignatureFile(signature);
    const sig = this.isEcdsa ? ecdsaSignatureToDer(raw) : raw;
    let ok: boolean;
    try {
      ok = cryptoVerify(this.digestAlgorithm, message, this.keyObject, sig);
    } catch {
      ok = false; // OpenSSL rejects some malformed inputs by throwing: same verdict
    }
    if (!ok) throw this.invalid();
  }

  /**
   * Like verify, from the message's digest instead of the message (`sha256:<hex>` in place
   * of a file). The digest must be of this verifier's digest algorithm; an Ed25519 key, which
   * signs the message itself, cannot be checked this way.
   */
  verifyDigest(algorithm: DigestAlgorithm, messageDigest: Uint8Array, signature: Uint8Array): void {
    if (this.digestAlgorithm === null) {
      throw new VerificationError(
        CoreErrorCode.DIGEST_ALGORITHM_UNSUPPORTED,
        'an Ed25519 signature covers the whole file, not a digest: it cannot be verified from a digest',
        { hint: 'pass the file itself instead of sha256:<hex>' },
      );
    }
    if (algorithm !== this.digestAlgorithm) {
      throw new VerificationError(
        CoreErrorCode.DIGEST_ALGORITHM_UNSUPPORTED,
        `a ${algorithm} digest was given but this key signs ${this.digestAlgorithm} digests`,
        { hint: 'pass the file itself, or --signature-digest-algorithm matching the digest' },
      );
    }
    const raw = decodeSignatureFile(signature);
    const sig = this.isEcdsa ? ecdsaSignatureToDer(raw) : raw;
    if (verifyPrehashed(this.keyObject, algorithm, Buffer.from(messageDigest), sig) !== 'valid') throw this.invalid();
  }

  private invalid(): VerificationError {
    return new VerificationError(CoreErrorCode.SIGNATURE_INVALID, this.failure, {
      hint: 'the artifact was modified after signing, or it was signed by a different key than the one given',
    });
  }
}
