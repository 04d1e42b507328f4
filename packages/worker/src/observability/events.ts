import { CoreErrorCode, formatArtifactRef } from '@apx/core';
import { StorageErrorCode } from '@apx/storage';
import { BoundedSet } from '../bounded-set.js';
import { WorkerErrorCode } from '../error.js';
import { isAvailabilityProblem, type LoadError, type LoadErrorCode } from '../load-error.js';
import type { LoadObserver } from '../loader.js';
import type { DiscoveryReport, PolicySetObserver } from '../policy-set.js';
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
  // Keyless: a valid certificate for an identity the environment does not trust.
  [CoreErrorCode.IDENTITY_MISMATCH]: 'untrusted_identity',
  [CoreErrorCode.REVOKED]: 'revoked_artifact',
  // The environment's attestation policy (SBOM, provenance): missing, forged, or refused.
  [CoreErrorCode.ATTESTATION_MISSING]: 'attestation_missing',
  [CoreErrorCode.ATTESTATION_INVALID]: 'attestation_invalid',
  [CoreErrorCode.ATTESTATION_POLICY_VIOLATION]: 'attestation_policy_violation',
  [CoreErrorCode.VULNERABLE_COMPONENT]: 'vulnerable_component',
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
  WorkerErrorCode.STATE_UNAVAILABLE,
  WorkerErrorCode.TRUST_REFRESH_FAILED,
  WorkerErrorCode.CONFIG_INVALID,
  WorkerErrorCode.CONFIG_UNSAFE,
  StorageErrorCode.CONFLICT,
  StorageErrorCode.UNSIGNED,
  StorageErrorCode.UNREACHABLE,
  StorageErrorCode.NOT_FOUND,
  StorageErrorCode.DENIED,
  StorageErrorCode.REQUEST_FAILED,
  StorageErrorCode.BACKEND_UNAVAILABLE,
  StorageErrorCode.INVALID_URL,
  StorageErrorCode.INVALID_NAME,
]);

/** Every reason apx_artifacts_verification_failures_total can be labelled with: each series exists from start, at 0. */
export const VERIFICATION_FAILURE_REASONS: readonly string[] = [
  ...Object.values(CoreErrorCode),
  ...Object.values(WorkerErrorCode),
  ...Object.values(StorageErrorCode),
].filter((code) => !NOT_INTEGRITY.has(code as LoadErrorCode));

/** Verdicts that do not depend on the bytes: one refusal per reference, whatever the digest. */
const BYTES_INDEPENDENT = new Set<string>([CoreErrorCode.VERSION_NOT_ALLOWED]);

/** Distinct refusals remembered (and so reported once each); past this the oldest may be reported again. */
export const REMEMBERED_REFUSALS = 10_000;

/**
 * Turns loader and policy-set events into the runbook's metrics and JSON log lines. A
 * refusal is reported once: one line, ERROR (WARNING for a missing signature) with the
 * runbook message, `policy_ref`, `digest`, the reason code and, when the bytes or signature
 * were tampered with, `security_event: "artifact_tampering"`; and one count in the runbook's
 * counters. A verdict on an artifact is the same refusal as long as (reference, digest,
 * reason) is the same, however often it is retried; an availability problem (store, key,
 * trust freshness) is reported again when it changes. Repeats are logged at DEBUG and counted
 * only in apx_policy_load_failures_total (every attempt).
 */
export function createObservers(log: WorkerLogger, metrics: WorkerMetrics): { load: LoadObserver; set: PolicySetObserver } {
  for (const reason of VERIFICATION_FAILURE_REASONS) metrics.verificationFailures.inc({ reason }, 0);
  for (const reason of ['misnamed', 'over_object_cap', 'over_policy_cap']) metrics.storeObjectsIgnored.set({ reason }, 0);
  const reported = new BoundedSet<string>(REMEMBERED_REFUSALS);
  /** The availability problem last reported for each reference (reported again when it changes). */
  const lastUnavailable = new Map<string, string>();
  const isNew = (error: LoadError): boolean => {
    if (isAvailabilityProblem(error.code)) {
      if (lastUnavailable.get(error.ref) === error.code) return false;
      lastUnavailable.delete(error.ref);
      lastUnavailable.set(error.ref, error.code);
      if (lastUnavailable.size > REMEMBERED_REFUSALS) lastUnavailable.delete(lastUnavailable.keys().next().value as string);
      return true;
    }
    lastUnavailable.delete(error.ref);
    const digest = BYTES_INDEPENDENT.has(error.code) ? '-' : (error.digest ?? '-');
    return reported.add(`${error.ref} ${digest} ${error.code}`);
  };
  const reportRejection = (error: LoadError, serving?: string) => {
    metrics.loadFailures.inc({ reason: error.code });
    const fields: Record<string, unknown> = { policy_ref: error.ref, reason: error.code };
    if (error.digest) fields.digest = error.digest;
    if (serving) fields.serving = serving;
    const securityEvent = SECURITY_EVENTS[error.code];
    if (securityEvent) fields.security_event = securityEvent;
    if (!isNew(error)) {
      log.debug({ ...fields, repeated: true }, error.message);
      return;
    }
    if (error.code === CoreErrorCode.SIGNATURE_MISSING) metrics.unsignedBlocked.inc();
    else if (error.code === CoreErrorCode.VERSION_NOT_ALLOWED) metrics.unknownVersions.inc();
    else if (error.code === CoreErrorCode.REVOKED) metrics.revokedBlocked.inc();
    if (!NOT_INTEGRITY.has(error.code)) metrics.verificationFailures.inc({ reason: error.code });
    if (serving) metrics.reloads.inc({ policy: error.ref.slice(0, error.ref.indexOf('@')), result: 'rejected' });
    if (error.code === CoreErrorCode.SIGNATURE_MISSING) log.warn(fields, error.message);
    else log.error(fields, error.message);
  };
  /** Discovery warnings last logged, by kind: each is logged again only when it changes. */
  const discoveryLines = new Map<string, string>();
  const onChange = (kind: string, line: string | undefined, fields: Record<string, unknown> = {}) => {
    if (line === undefined) {
      discoveryLines.delete(kind);
      return;
    }
    if (discoveryLines.get(kind) === line) return;
    discoveryLines.set(kind, line);
    log.warn(fields, line);
  };
  const reportDiscovery = ({ storeUrl, listing, policies, overCap, limits }: DiscoveryReport) => {
    onChange('listing', undefined);
    const overObjects = listing.truncated ? listing.objects - limits.maxObjects : 0;
    metrics.storeObjectsIgnored.set({ reason: 'misnamed' }, listing.misnamed.count);
    metrics.storeObjectsIgnored.set({ reason: 'over_object_cap' }, overObjects);
    metrics.storeObjectsIgnored.set({ reason: 'over_policy_cap' }, overCap);
    onChange(
      'objects',
      listing.truncated
        ? `the store ${storeUrl} lists ${listing.objects} objects, more than ${limits.maxObjects}: only the first ${limits.maxObjects} by name are considered; set APX_POLICIES to the policies to serve, or remove what does not belong in the store`
        : undefined,
      { objects: listing.objects, max_objects: limits.maxObjects },
    );
    onChange(
      'policies',
      overCap > 0
        ? `${policies} policies found in ${storeUrl}, more than ${limits.maxPolicies}: ${overCap} not served; set APX_POLICIES to the policies to serve`
        : undefined,
      { policies, max_policies: limits.maxPolicies },
    );
    onChange(
      'misnamed',
      listing.misnamed.count > 0
        ? `the store ${storeUrl} holds ${listing.misnamed.count} .wasm object(s) not named <policy-id>@<semver>.wasm, never loaded: ${listing.misnamed.examples.join(', ')}${listing.misnamed.count > listing.misnamed.examples.length ? ', ...' : ''}; publish artifacts as <policy-id>@<semver>.wasm (apx compile names them so) and remove the others`
        : undefined,
      { misnamed: listing.misnamed.count },
    );
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
      lastUnavailable.delete(policy.refText);
      log.info(
        {
          policy_ref: policy.refText,
          digest: policy.artifact.digest,
          key_id: policy.artifact.keyId,
          // Keyless: the identity the Fulcio certificate named (subject from issuer).
          ...(policy.artifact.identity ? { identity: policy.artifact.identity } : {}),
          source,
          load_ms: Math.round(seconds * 1e6) / 1e3,
        },
        `policy loaded: ${policy.refText}`,
      );
    },
    rejected(error, seconds, serving) {
      metrics.loadDuration.observe({ result: 'rejected', source: 'store' }, seconds);
      reportRejection(error, serving);
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
      // Withdrawn by the trust repository (REVOKED), or judged again under a new VEX document.
      if (error.code === CoreErrorCode.REVOKED) metrics.revokedBlocked.inc();
      else metrics.verificationFailures.inc({ reason: error.code });
      metrics.policyReady.set({ policy: state.policyId }, 0);
      log.error(
        {
          policy_ref: unloaded.refText,
          digest: unloaded.artifact.digest,
          reason: error.code,
          security_event: SECURITY_EVENTS[error.code] ?? 'revoked_artifact',
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
    retryScheduled(state, delayMs) {
      metrics.policyReady.set({ policy: state.policyId }, state.current ? 1 : 0);
      // The refusal itself was reported (once); each retry is a DEBUG line.
      log.debug(
        { policy: state.policyId, retry_in_ms: delayMs, reason: state.lastError?.code },
        `policy ${state.policyId} not loaded; retrying in ${delayMs} ms${state.lastError ? `: ${state.lastError.message}` : ' (no version in the store)'}`,
      );
    },
    discoveryFailed(error) {
      const message = `cannot list policies in the store: ${(error as Error).message}`;
      if (discoveryLines.get('listing') === message) return;
      discoveryLines.set('listing', message);
      log.error({ reason: 'STORE_UNAVAILABLE' }, message);
    },
    discovered: reportDiscovery,
    unknownVersion(ref, reason) {
      const refText = formatArtifactRef(ref);
      // The same key as a refused load of that reference: counted once, whichever comes first.
      if (!reported.add(`${refText} - ${reason.code}`)) return;
      metrics.unknownVersions.inc();
      log.warn(
        { policy_ref: refText, reason: reason.code },
        `unknown version in the store, not loaded: ${refText}: ${reason.message}`,
      );
    },
  };
  return { load, set };
}
