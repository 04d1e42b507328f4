import { CoreErrorCode } from '@apx/core';
import { StorageErrorCode } from '@apx/storage';
import { WorkerErrorCode } from '../error.js';
import type { LoadError, LoadErrorCode } from '../load-error.js';
import type { LoadObserver } from '../loader.js';
import type { PolicySetObserver } from '../policy-set.js';
import type { WorkerLogger } from './logger.js';
import type { WorkerMetrics } from './metrics.js';

/**
 * Rejections that are attacks, not outages, and the security event each is logged with:
 * changed bytes or signatures are `artifact_tampering` (the runbook's query), the others
 * name the trust rule that stopped them.
 */
const SECURITY_EVENTS: Partial<Record<LoadErrorCode, string>> = {
  [CoreErrorCode.SIGNATURE_INVALID]: 'artifact_tampering',
  [CoreErrorCode.SIGNATURE_MALFORMED]: 'artifact_tampering',
  [CoreErrorCode.BUNDLE_DIGEST_MISMATCH]: 'artifact_tampering',
  [CoreErrorCode.DIGEST_BLOCKED]: 'artifact_tampering',
  [CoreErrorCode.BINDING_MISMATCH]: 'artifact_substitution',
  [CoreErrorCode.ROLLBACK_REFUSED]: 'rollback_attempt',
  [CoreErrorCode.EMBEDDED_NAME_MISMATCH]: 'artifact_substitution',
  [CoreErrorCode.TARGET_MISMATCH]: 'artifact_tampering',
  [CoreErrorCode.ARTIFACT_NOT_VERIFIED]: 'artifact_tampering',
  [CoreErrorCode.NOT_APPROVED]: 'unapproved_artifact',
  [CoreErrorCode.REVOKED]: 'revoked_artifact',
};

/** Codes that are availability problems, not verdicts on an artifact. */
const NOT_INTEGRITY = new Set<LoadErrorCode>([
  CoreErrorCode.SIGNATURE_MISSING,
  CoreErrorCode.VERSION_NOT_ALLOWED,
  WorkerErrorCode.STORE_UNAVAILABLE,
  WorkerErrorCode.ARTIFACT_NOT_FOUND,
  WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
  WorkerErrorCode.TRUST_STALE,
  WorkerErrorCode.DECISION_DEADLINE_EXCEEDED,
  StorageErrorCode.UNREACHABLE,
  StorageErrorCode.NOT_FOUND,
  StorageErrorCode.DENIED,
  StorageErrorCode.REQUEST_FAILED,
  StorageErrorCode.BACKEND_UNAVAILABLE,
  StorageErrorCode.INVALID_URL,
  StorageErrorCode.INVALID_NAME,
]);

/**
 * Turns loader and policy-set events into the runbook's metrics and one JSON log line
 * each. A rejection logs ERROR (WARNING for a missing signature) with the runbook message,
 * `policy_ref`, `digest`, the reason code, and `security_event: "artifact_tampering"` when
 * the bytes or signature were tampered with.
 */
export function createObservers(log: WorkerLogger, metrics: WorkerMetrics): { load: LoadObserver; set: PolicySetObserver } {
  const reportRejection = (error: LoadError) => {
    metrics.loadFailures.inc({ reason: error.code });
    if (error.code === CoreErrorCode.SIGNATURE_MISSING) metrics.unsignedBlocked.inc();
    else if (error.code === CoreErrorCode.VERSION_NOT_ALLOWED) metrics.unknownVersions.inc();
    else if (error.code === CoreErrorCode.REVOKED) metrics.revokedBlocked.inc();
    if (!NOT_INTEGRITY.has(error.code)) metrics.verificationFailures.inc({ reason: error.code });
    const fields: Record<string, unknown> = { policy_ref: error.ref, reason: error.code };
    if (error.digest) fields.digest = error.digest;
    const securityEvent = SECURITY_EVENTS[error.code];
    if (securityEvent) fields.security_event = securityEvent;
    if (error.code === CoreErrorCode.SIGNATURE_MISSING) log.warn(fields, error.message);
    else log.error(fields, error.message);
  };
  const load: LoadObserver = {
    loaded(policy, source, seconds) {
      if (source === 'memory') {
        metrics.cacheHits.inc({ tier: 'memory' });
        return;
      }
      if (source === 'disk') metrics.cacheHits.inc({ tier: 'disk' });
      else metrics.cacheMisses.inc();
      metrics.loadDuration.observe({ result: 'loaded', source }, seconds);
      log.info(
        {
          policy_ref: policy.refText,
          digest: policy.artifact.digest,
          key_id: policy.artifact.keyId,
          source,
          load_ms: Math.round(seconds * 1e6) / 1e3,
        },
        `policy loaded: ${policy.refText}`,
      );
    },
    rejected(error, seconds) {
      metrics.loadDuration.observe({ result: 'rejected', source: 'store' }, seconds);
      reportRejection(error);
    },
    unsignedAccepted(ref, digest) {
      log.warn({ policy_ref: ref, digest }, `loading unsigned artifact ${ref}: strict mode disabled`);
    },
    diskEntryRejected(error) {
      reportRejection(error);
    },
  };
  const set: PolicySetObserver = {
    revoked(state, unloaded, error) {
      metrics.revokedBlocked.inc();
      metrics.policyReady.set({ policy: state.policyId }, 0);
      log.error(
        {
          policy_ref: unloaded.refText,
          digest: unloaded.artifact.digest,
          reason: error.code,
          security_event: 'revoked_artifact',
        },
        `policy unloaded: ${error.reason}`,
      );
    },
    stopped(state, unloaded, error) {
      metrics.policyReady.set({ policy: state.policyId }, 0);
      log.error(
        { policy_ref: unloaded.refText, digest: unloaded.artifact.digest, reason: error.code },
        `policy unloaded: ${error.reason}`,
      );
    },
    swapped(state, previous) {
      if (!state.current) return;
      metrics.policyReady.set({ policy: state.policyId }, 1);
      if (previous) {
        metrics.reloads.inc({ policy: state.policyId, result: 'swapped' });
        log.info(
          { policy_ref: state.current.refText, previous_ref: previous.refText, digest: state.current.artifact.digest },
          `policy swapped: ${previous.refText} -> ${state.current.refText}`,
        );
      }
    },
    reloadRejected(state, error) {
      metrics.reloads.inc({ policy: state.policyId, result: 'rejected' });
      log.error(
        { policy_ref: error.ref, serving: state.current?.refText, reason: error.code },
        `new version rejected, still serving ${state.current?.refText ?? 'nothing'}: ${error.message}`,
      );
    },
    retryScheduled(state, delayMs) {
      metrics.policyReady.set({ policy: state.policyId }, state.current ? 1 : 0);
      log.warn(
        { policy: state.policyId, retry_in_ms: delayMs, reason: state.lastError?.code },
        `policy ${state.policyId} not loaded; retrying in ${delayMs} ms${state.lastError ? `: ${state.lastError.message}` : ' (no version in the store)'}`,
      );
    },
    discoveryFailed(error) {
      log.error({ reason: 'STORE_UNAVAILABLE' }, `cannot list policies in the store: ${(error as Error).message}`);
    },
  };
  return { load, set };
}
