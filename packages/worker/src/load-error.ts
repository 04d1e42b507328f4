import { ApxError, type ArtifactRef, formatArtifactRef, isApxError } from '@apx/core';

/**
 * A failed load: the runbook's wrapper `artifact verification failed for <ref>: <message>`
 * around the first check that failed, keeping that check's code (the metric label).
 */
export class LoadError extends ApxError<string> {
  override readonly name = 'LoadError';
  readonly ref: string;
  readonly digest: string | undefined;
  /** The inner message alone (what the runbook's troubleshooting section shows). */
  readonly reason: string;

  constructor(ref: ArtifactRef, cause: unknown, digest?: string) {
    const inner = isApxError(cause) ? cause : undefined;
    const reason = inner ? inner.message : cause instanceof Error ? cause.message : String(cause);
    super(inner?.code ?? 'INTERNAL', `artifact verification failed for ${formatArtifactRef(ref)}: ${reason}`, {
      ...(inner?.hint ? { hint: inner.hint } : {}),
      cause,
    });
    this.ref = formatArtifactRef(ref);
    this.digest = digest;
    this.reason = reason;
  }
}
