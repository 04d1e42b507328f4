// Verifying a signature from the artifact's digest alone (`apx verify-blob sha256:<hex>`,
// cosign's and the Sigstore conformance protocol's digest form). Node's crypto.verify always
// hashes its input, so a message signature over a blob cannot be checked against the blob's
// digest with it. ECDSA is verified by @noble/curves (the maintained, audited JavaScript
// implementation) on the digest as given; RSA PKCS#1 v1.5 by recovering the DigestInfo with
// the public key. Pure Ed25519 signs the message itself and cannot be checked from a digest.
import { constants, type KeyObject, publicDecrypt } from 'node:crypto';
import { createRequire } from 'node:module';
import { derEcdsaLength } from './encoding.js';

type NobleCurve = {
  verify(
    signature: Uint8Array,
    digest: Uint8Array,
    publicKey: Uint8Array,
    options: { prehash: boolean; lowS: boolean; format: 'der' | 'compact' },
  ): boolean;
};
const lazyRequire = createRequire(import.meta.url);
let nist: Record<string, NobleCurve> | undefined;

/** @noble/curves' NIST curves by Node's curve name, loaded on first use (digest-only verification is rare). */
function curveFor(name: string): { curve: NobleCurve; size: number } | undefined {
  nist ??= lazyRequire('@noble/curves/nist') as Record<string, NobleCurve>;
  const table: Record<string, [string, number]> = { prime256v1: ['p256', 32], secp384r1: ['p384', 48], secp521r1: ['p521', 66] };
  const entry = table[name];
  const curve = entry ? nist[entry[0]] : undefined;
  return curve && entry ? { curve, size: entry[1] } : undefined;
}

/**
 * True when `sig` (DER, or P1363 r||s of the curve's size) is an ECDSA signature of `digest`
 * by `key`, checked by @noble/curves on the digest as given (no hashing), high-S accepted as
 * cosign does.
 */
function verifyEcdsa(key: KeyObject, digest: Buffer, sig: Buffer): boolean {
  const found = curveFor(key.asymmetricKeyDetails?.namedCurve ?? '');
  if (!found) return false;
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return false;
  const publicKey = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  const der = derEcdsaLength(sig) === sig.length;
  if (!der && sig.length !== 2 * found.size) return false;
  try {
    return found.curve.verify(sig, digest, publicKey, { prehash: false, lowS: false, format: der ? 'der' : 'compact' });
  } catch {
    return false;
  }
}

/** DER prefixes of PKCS#1 v1.5 DigestInfo (RFC 8017 9.2 note 1). */
const DIGEST_INFO: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

function verifyRsa(key: KeyObject, digest: Buffer, algorithm: string, sig: Buffer): boolean {
  const prefix = DIGEST_INFO[algorithm];
  if (!prefix) return false;
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false;
  }
  return recovered.equals(Buffer.concat([Buffer.from(prefix, 'hex'), digest]));
}

export type PrehashedResult = 'valid' | 'invalid' | 'unsupported';

/**
 * Checks a signature made over a message whose `algorithm` digest is `digest`, without the
 * message. 'unsupported' for keys that sign the message itself (Ed25519).
 */
export function verifyPrehashed(key: KeyObject, algorithm: string, digest: Buffer, sig: Buffer): PrehashedResult {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return verifyEcdsa(key, digest, sig) ? 'valid' : 'invalid';
    case 'rsa':
      return verifyRsa(key, digest, algorithm, sig) ? 'valid' : 'invalid';
    default:
      return 'unsupported';
  }
}
