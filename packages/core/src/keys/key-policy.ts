import type { KeyObject } from 'node:crypto';
import type { DigestAlgorithm } from '../digest.js';

/** The key types cosign signs and verifies with, and so the ones APX accepts. */
export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'rsa' | 'ed25519';

export type KeyCheck = { ok: true; algorithm: KeyAlgorithm } | { ok: false; family: 'ecdsa' | 'rsa' | 'other'; reason: string };

const CURVES: Record<string, KeyAlgorithm> = {
  prime256v1: 'ecdsa-p256',
  secp384r1: 'ecdsa-p384',
  secp521r1: 'ecdsa-p521',
};

/** Curves Go's crypto/elliptic knows but sigstore's goodkey refuses, by their Go name. */
const KNOWN_BUT_REFUSED: Record<string, string> = { secp224r1: 'P-224' };

const RSA_SIZES = new Set([2048, 3072, 4096]);

/**
 * cosign's key policy (sigstore goodkey, itself from Let's Encrypt boulder): ECDSA on
 * P-256, P-384 or P-521; RSA of exactly 2048, 3072 or 4096 bits; Ed25519. Anything else is
 * refused with the reason cosign gives, so a user moving between the tools sees the same
 * verdict. Works on public and private KeyObjects alike.
 */
export function checkKey(key: KeyObject): KeyCheck {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = details.namedCurve ?? 'unknown';
      const alg = CURVES[curve];
      if (alg) return { ok: true, algorithm: alg };
      const goName = KNOWN_BUT_REFUSED[curve];
      return goName
        ? { ok: false, family: 'ecdsa', reason: `ECDSA curve ${goName} not allowed` }
        : { ok: false, family: 'ecdsa', reason: `unsupported elliptic curve ${curve}` };
    }
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (RSA_SIZES.has(bits)) return { ok: true, algorithm: 'rsa' };
      return { ok: false, family: 'rsa', reason: `key size not supported: ${bits}` };
    }
    case 'ed25519':
      return { ok: true, algorithm: 'ed25519' };
    default:
      return {
        ok: false,
        family: 'other',
        reason: `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`,
      };
  }
}

/**
 * The digest cosign ≥ 2.6 signs with for each key type (sigstore's algorithm registry):
 * the hash matches the curve size. Ed25519 signs the message itself (pure Ed25519), which
 * is what cosign does when it is not uploading to a transparency log.
 */
export function defaultDigestFor(alg: KeyAlgorithm): DigestAlgorithm | null {
  switch (alg) {
    case 'ecdsa-p384':
      return 'sha384';
    case 'ecdsa-p521':
      return 'sha512';
    case 'ed25519':
      return null;
    default:
      return 'sha256';
  }
}

/** Size in bytes of one ECDSA scalar (r or s) for the curve, for P1363 handling. */
export function ecdsaScalarBytes(alg: KeyAlgorithm): number | undefined {
  switch (alg) {
    case 'ecdsa-p256':
      return 32;
    case 'ecdsa-p384':
      return 48;
    case 'ecdsa-p521':
      return 66;
    default:
      return undefined;
  }
}

/** How users name the family in messages: "ECDSA signature verification failed". */
export function signatureFamilyName(alg: KeyAlgorithm): string {
  if (alg === 'rsa') return 'RSA';
  if (alg === 'ed25519') return 'Ed25519';
  return 'ECDSA';
}
