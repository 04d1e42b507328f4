import { createPublicKey, type KeyObject } from 'node:crypto';
import { sha256Hex } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { checkKey, type KeyAlgorithm } from './key-policy.js';
import { decodeFirstPem, encodePem } from './pem.js';

/**
 * A public key APX trusts to verify signatures: parsed once, policy-checked, with its key
 * id (lowercase hex SHA-256 of the SPKI DER) computed up front so the hot path never
 * re-parses a PEM (parsing per call is 3× slower than verifying, DESIGN.md §9).
 */
export class PublicKey {
  readonly keyObject: KeyObject;
  readonly algorithm: KeyAlgorithm;
  readonly spkiDer: Buffer;
  readonly keyId: string;

  private constructor(keyObject: KeyObject, algorithm: KeyAlgorithm) {
    this.keyObject = keyObject;
    this.algorithm = algorithm;
    this.spkiDer = keyObject.export({ type: 'spki', format: 'der' });
    this.keyId = sha256Hex(this.spkiDer);
  }

  /** From any public (or private: its public half) KeyObject, checked against key policy. */
  static fromKeyObject(key: KeyObject): PublicKey {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    const check = checkKey(pub);
    if (!check.ok) {
      throw new VerificationError(CoreErrorCode.KEY_UNSUPPORTED, `unsupported public key: ${check.reason}`, {
        hint: 'use an ECDSA P-256/P-384/P-521, RSA 2048/3072/4096 or Ed25519 key',
      });
    }
    return new PublicKey(pub, check.algorithm);
  }

  /**
   * From PEM text as cosign reads it: the first block, `PUBLIC KEY` (PKIX) or
   * `RSA PUBLIC KEY` (PKCS#1). `source` names where the text came from, for messages.
   */
  static fromPem(text: string, source = 'public key'): PublicKey {
    const block = decodeFirstPem(text);
    if (!block) {
      throw new VerificationError(CoreErrorCode.PUBLIC_KEY_INVALID, `invalid public key in ${source}: no PEM block found`, {
        hint: 'pass a PEM "PUBLIC KEY" file such as keys/cosign.pub',
      });
    }
    let type: 'spki' | 'pkcs1';
    if (block.label === 'PUBLIC KEY') type = 'spki';
    else if (block.label === 'RSA PUBLIC KEY') type = 'pkcs1';
    else {
      throw new VerificationError(
        CoreErrorCode.PUBLIC_KEY_INVALID,
        `invalid public key in ${source}: PEM type "${block.label}" is not a public key`,
        { hint: 'pass the .pub file (PEM "PUBLIC KEY"), not a private key or certificate' },
      );
    }
    let keyObject: KeyObject;
    try {
      keyObject = createPublicKey({ key: block.der, format: 'der', type });
    } catch (err) {
      throw new VerificationError(CoreErrorCode.PUBLIC_KEY_INVALID, `invalid public key in ${source}: the key does not parse`, {
        hint: "the file is corrupted; fetch the signer's public key again (apx public-key --key KEY)",
        cause: err,
      });
    }
    return PublicKey.fromKeyObject(keyObject);
  }

  /** PEM `PUBLIC KEY`, byte-identical to cosign.pub (Go's MarshalPublicKeyToPEM layout). */
  toPem(): string {
    return encodePem('PUBLIC KEY', this.spkiDer);
  }
}
