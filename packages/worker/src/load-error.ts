import { ApxError, type ArtifactRef, CoreErrorCode, formatArtifactRef, isApxError } from '@apx/core';
import { StorageErrorCode } from '@apx/storage';
import { WorkerErrorCode } from './error.js';

/**
 * Why a load failed: one closed set, the union of the codes of the packages a load goes
 * through (core's verdicts, the worker's own, the store's; key providers report under the
 * worker's PUBLIC_KEY_UNAVAILABLE). It is the
 * `reason` label of the metrics and logs; nothing decides on message text.
 */
export type LoadErrorCode = CoreErrorCode | WorkerErrorCode | StorageErrorCode;

const KNOWN = new Set<string>([
  ...Object.values(CoreErrorCode),
  ...Object.values(WorkerErrorCode),
  ...Object.values(StorageErrorCode),
]);

function codeOf(cause: unknown): LoadErrorCode {
  return isApxError(cause) && KNOWN.has(cause.code) ? (cause.code as LoadErrorCode) : WorkerErrorCode.INTERNAL;
}

/**
 * A failed load: the runbook's wrapper `artifact verification failed for <ref>: <message>`
 * around the first check that failed, keeping that check's code (the metric label).
 */
export class LoadError extends ApxError<LoadErrorCode> {
  override readonly name = 'LoadError';
  readonly ref: string;
  readonly digest: string | undefined;
  /** The inner message alone (what the runbook's troubleshooting section shows). */
  readonly reason: string;

  constructor(ref: ArtifactRef, cause: unknown, digest?: string) {
    const inner = isApxError(cause) ? cause : undefined;
    const reason = inner ? inner.message : cause instanceof Error ? cause.message : String(cause);
    super(codeOf(cause), `artifact verification failed for ${formatArtifactRef(ref)}: ${reason}`, {
      ...(inner?.hint ? { hint: inner.hint } : {}),
      cause,
    });
    this.ref = formatArtifactRef(ref);
    this.digest = digest;
    this.reason = reason;
  }
}
