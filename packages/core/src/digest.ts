import { createHash } from 'node:crypto';
import { CoreErrorCode, VerificationError } from './error.js';

/** The digest algorithms cosign and Sigstore bundles use, by Node's name. */
export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

const SIGSTORE_NAMES: Record<DigestAlgorithm, string> = {
  sha256: 'SHA2_256',
  sha384: 'SHA2_384',
  sha512: 'SHA2_512',
};

export function parseDigestAlgorithm(name: string): DigestAlgorithm {
  const lower = name.toLowerCase().replace('-', '');
  if (lower === 'sha256' || lower === 'sha384' || lower === 'sha512') return lower;
  throw new VerificationError(CoreErrorCode.DIGEST_ALGORITHM_UNSUPPORTED, `unsupported digest algorithm: ${name}`, {
    hint: 'use sha256, sha384 or sha512',
  });
}

/** The protobuf-specs HashAlgorithm enum name (SHA2_256...) used in bundles. */
export function sigstoreHashName(alg: DigestAlgorithm): string {
  return SIGSTORE_NAMES[alg];
}

export function digestFromSigstoreName(name: string): DigestAlgorithm | undefined {
  for (const [alg, sigstore] of Object.entries(SIGSTORE_NAMES)) {
    if (sigstore === name) return alg as DigestAlgorithm;
  }
  return undefined;
}

export function digest(alg: DigestAlgorithm, data: Uint8Array): Buffer {
  return createHash(alg).update(data).digest();
}

/** Lowercase hex SHA-256, the form APX uses for artifact digests and key ids. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
