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

/**
 * Codes that say the artifact could not be judged now (store, key, trust freshness, the
 * worker's state, a bug), as opposed to verdicts on the artifact itself (refused bytes,
 * signature, name, version, approval...). A failure of availability may pass: it is reported
 * again when it changes and a policy it keeps out stays in readiness. A verdict stays until
 * the store holds other bytes: it is reported once per (reference, digest, reason).
 */
const AVAILABILITY = new Set<LoadErrorCode>([
  WorkerErrorCode.STORE_UNAVAILABLE,
  WorkerErrorCode.ARTIFACT_NOT_FOUND,
  WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
  WorkerErrorCode.TRUST_STALE,
  WorkerErrorCode.TRUST_REFRESH_FAILED,
  WorkerErrorCode.STATE_UNAVAILABLE,
  WorkerErrorCode.CONFIG_INVALID,
  WorkerErrorCode.CONFIG_UNSAFE,
  WorkerErrorCode.INTERNAL,
  StorageErrorCode.INVALID_URL,
  StorageErrorCode.NOT_FOUND,
  StorageErrorCode.UNREACHABLE,
  StorageErrorCode.INTEGRITY, // a download cut short: the next one may be whole
  StorageErrorCode.DENIED,
  StorageErrorCode.CONFLICT,
  StorageErrorCode.BACKEND_UNAVAILABLE,
  StorageErrorCode.REQUEST_FAILED,
]);

export function isAvailabilityProblem(code: LoadErrorCode): boolean {
  return AVAILABILITY.has(code);
}

const STORED_OBJECT_VERDICTS = new Set<string>([
  StorageErrorCode.TOO_LARGE,
  StorageErrorCode.NOT_A_FILE,
  StorageErrorCode.INVALID_NAME,
]);
const CORE_CODES = new Set<string>(Object.values(CoreErrorCode));

/**
 * The verifier refused the artifact on its merits (core's verdicts, or a stored object that
 * cannot be an artifact): what the store holds under that name will not load until it is
 * replaced. Runtime failures of an accepted artifact and availability problems are not.
 */
export function isVerifierRefusal(code: LoadErrorCode): boolean {
  return CORE_CODES.has(code) || STORED_OBJECT_VERDICTS.has(code);
}
