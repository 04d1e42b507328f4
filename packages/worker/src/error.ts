import { ApxError } from '@apx/core';

/**
 * The closed set of error codes the worker raises itself. Every verdict on an artifact
 * (allow-list, rollback, blocked pairs, signatures...) is core's, with core's codes.
 */
export const WorkerErrorCode = {
  /** A setting that is malformed (bad port, unknown environment, bad allow-list entry). */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** A setting production refuses: strict mode off, no allow-list. */
  CONFIG_UNSAFE: 'CONFIG_UNSAFE',
  /** The trusted public key could not be obtained. */
  PUBLIC_KEY_UNAVAILABLE: 'PUBLIC_KEY_UNAVAILABLE',
  /** The artifact is not in the store. */
  ARTIFACT_NOT_FOUND: 'ARTIFACT_NOT_FOUND',
  /** The store could not be reached or answered with an error. */
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  /** No verified trust repository yet, or its metadata expired: new loads are refused. */
  TRUST_STALE: 'TRUST_STALE',
  /** The trust repository cannot be read or refused (rollback, forged, mixed, expired...); the last good view is kept. */
  TRUST_REFRESH_FAILED: 'TRUST_REFRESH_FAILED',
  /** A decision of this artifact ran past APX_DECISION_DEADLINE_MS: it was stopped and the artifact unloaded. */
  DECISION_DEADLINE_EXCEEDED: 'DECISION_DEADLINE_EXCEEDED',
  /** The module could not be instantiated for the ABI. */
  INSTANTIATION_FAILED: 'INSTANTIATION_FAILED',
  /** The worker's state (APX_STATE_DIR: rollback floors) cannot be read or written. */
  STATE_UNAVAILABLE: 'STATE_UNAVAILABLE',
  /** A failure that carries no APX code (a bug): reported under this one label. */
  INTERNAL: 'INTERNAL',
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCode)[keyof typeof WorkerErrorCode];

export class WorkerError extends ApxError<WorkerErrorCode> {
  override readonly name = 'WorkerError';
}
