import { ApxError } from '@apx/core';

/**
 * The closed set of error codes of the trust repository. Codes are API: the worker labels
 * metrics with them and the CLI's exit paths and tests match on them, never on messages.
 */
export const TrustErrorCode = {
  /** No trust repository in the store (no tuf/1.root.json or tuf/timestamp.json). */
  REPOSITORY_NOT_FOUND: 'REPOSITORY_NOT_FOUND',
  /** A worker in TUF mode with neither a trusted root in APX_STATE_DIR nor APX_TRUST_ROOT. */
  ROOT_MISSING: 'ROOT_MISSING',
  /** Metadata that is not JSON, not TUF, of the wrong type, or with a version that is not a safe integer. */
  METADATA_INVALID: 'METADATA_INVALID',
  /** Metadata without a threshold of valid signatures from the keys its delegator names (TUF 5.3.4, 5.4.2, 5.5.3, 5.6.3). */
  SIGNATURE_THRESHOLD: 'SIGNATURE_THRESHOLD',
  /** A version lower than the one trusted (rollback, TUF 5.3.5, 5.4.3, 5.5.5, 5.6.5). */
  ROLLBACK: 'ROLLBACK',
  /** Metadata past its expiry (freeze attack, TUF 5.3.10, 5.4.4, 5.5.6, 5.6.6). */
  EXPIRED: 'EXPIRED',
  /** Metadata whose length, hash or version is not what its referrer says (mix-and-match, TUF 5.5.2, 5.6.2). */
  MISMATCH: 'MISMATCH',
  /** Metadata over its size cap (endless data). */
  TOO_LARGE: 'TOO_LARGE',
  /** A role that lists one key twice under two key ids: a threshold must count distinct keys. */
  DUPLICATE_KEY: 'DUPLICATE_KEY',
  /** The worker's own trusted state in APX_STATE_DIR is unreadable or went backwards. */
  STATE_INVALID: 'STATE_INVALID',
  /** The store could not be read or written. */
  STORE_FAILED: 'STORE_FAILED',
  /** Another publisher changed the repository since it was read (compare-and-swap lost). */
  CONFLICT: 'CONFLICT',
  /** A key type TUF clients cannot verify as APX signs (TUF role keys: ECDSA P-256 or Ed25519). */
  KEY_UNSUPPORTED: 'KEY_UNSUPPORTED',
  /** A key that signs for a role is not one of that role's keys. */
  KEY_NOT_IN_ROLE: 'KEY_NOT_IN_ROLE',
  /** Not enough signatures yet: the metadata is staged until more approvers sign. */
  THRESHOLD_NOT_MET: 'THRESHOLD_NOT_MET',
  /** Staged metadata that a later publish made obsolete. */
  STAGED_STALE: 'STAGED_STALE',
  /** A request the repository cannot carry out (unknown environment, artifact not approved, bad threshold...). */
  INVALID_REQUEST: 'INVALID_REQUEST',
} as const;
export type TrustErrorCode = (typeof TrustErrorCode)[keyof typeof TrustErrorCode];

export class TrustError extends ApxError<TrustErrorCode> {
  override readonly name = 'TrustError';
}

export function isTrustError(err: unknown, code?: TrustErrorCode): err is TrustError {
  return err instanceof TrustError && (code === undefined || err.code === code);
}
