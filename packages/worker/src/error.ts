import { ApxError } from '@apx/core';

/** The closed set of error codes the worker raises itself (verification codes come from core). */
export const WorkerErrorCode = {
  /** A setting that is malformed (bad port, unknown environment, bad allow-list entry). */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** A setting production refuses: strict mode off, no allow-list. */
  CONFIG_UNSAFE: 'CONFIG_UNSAFE',
  /** The version is not admitted by ALLOWED_POLICY_VERSIONS (the runbook's message). */
  VERSION_NOT_ALLOWED: 'VERSION_NOT_ALLOWED',
  /** The trusted public key could not be obtained. */
  PUBLIC_KEY_UNAVAILABLE: 'PUBLIC_KEY_UNAVAILABLE',
  /** The artifact is not in the store. */
  ARTIFACT_NOT_FOUND: 'ARTIFACT_NOT_FOUND',
  /** The store could not be reached or answered with an error. */
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  /** The artifact's digest was blocked after it failed signature verification. */
  DIGEST_BLOCKED: 'DIGEST_BLOCKED',
  /** A version lower than the highest this worker verified for the policy, not named explicitly. */
  ROLLBACK_REFUSED: 'ROLLBACK_REFUSED',
  /** The signed policy index is missing or expired: new loads are refused. */
  INDEX_EXPIRED: 'INDEX_EXPIRED',
  /** The module could not be instantiated for the ABI. */
  INSTANTIATION_FAILED: 'INSTANTIATION_FAILED',
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCode)[keyof typeof WorkerErrorCode];

export class WorkerError extends ApxError<WorkerErrorCode> {
  override readonly name = 'WorkerError';
}
