import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The worker's Prometheus metrics. The three runbook metrics keep their meaning:
 * verification_failures counts integrity failures (signature, digest, size, magic,
 * validation...) by reason code; unsigned_blocked and unknown_versions count their own
 * situations and are not double-counted as integrity failures.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly verificationFailures = new Counter({
    name: 'apx_artifacts_verification_failures_total',
    help: 'Artifacts rejected by verification, by reason code (apx.artifacts.verification_failures).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly unsignedBlocked = new Counter({
    name: 'apx_artifacts_unsigned_blocked_total',
    help: 'Unsigned artifacts refused in strict mode (apx.artifacts.unsigned_blocked).',
    registers: [this.registry],
  });
  readonly unknownVersions = new Counter({
    name: 'apx_artifacts_unknown_versions_total',
    help: 'Loads refused because the version is not in the allow-list (apx.artifacts.unknown_versions).',
    registers: [this.registry],
  });
  readonly revokedBlocked = new Counter({
    name: 'apx_artifacts_revoked_blocked_total',
    help: 'Revoked artifacts unloaded or refused (by reference, digest or signing key).',
    registers: [this.registry],
  });
  readonly revocationListVersion = new Gauge({
    name: 'apx_revocation_list_version',
    help: 'Version of the revocation list in force (0: none).',
    registers: [this.registry],
  });
  readonly revocationListRejected = new Counter({
    name: 'apx_revocation_list_rejected_total',
    help: 'Revocation lists refused: unsigned, badly signed, malformed or older than the one held.',
    registers: [this.registry],
  });
  readonly keyringVersion = new Gauge({
    name: 'apx_keyring_version',
    help: 'Version of the keyring in force (0: the APX_PUBLIC_KEY keyring).',
    registers: [this.registry],
  });
  readonly keyringRejected = new Counter({
    name: 'apx_keyring_rejected_total',
    help: 'Keyrings refused: not signed by an active key of the keyring in force, malformed, or older.',
    registers: [this.registry],
  });
  readonly policyIndexVersion = new Gauge({
    name: 'apx_policy_index_version',
    help: 'Version of the signed policy index in force (0: none).',
    registers: [this.registry],
  });
  readonly policyIndexExpired = new Gauge({
    name: 'apx_policy_index_expired',
    help: '1 while the policy index is expired or missing (new loads refused), else 0.',
    registers: [this.registry],
  });
  readonly policyIndexRejected = new Counter({
    name: 'apx_policy_index_rejected_total',
    help: 'Policy indexes refused: unsigned, badly signed, malformed or older than the one held.',
    registers: [this.registry],
  });
  readonly loadFailures = new Counter({
    name: 'apx_policy_load_failures_total',
    help: 'Failed policy load attempts, by reason code (integrity and availability alike).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly loadDuration = new Histogram({
    name: 'apx_policy_load_duration_seconds',
    help: 'Time to load a policy: fetch, verify, validate, instantiate.',
    labelNames: ['result', 'source'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: 'apx_artifact_cache_hits_total',
    help: 'Policy loads answered from a cache, by tier (memory, disk).',
    labelNames: ['tier'],
    registers: [this.registry],
  });
  readonly cacheMisses = new Counter({
    name: 'apx_artifact_cache_misses_total',
    help: 'Policy loads that had to download from the store.',
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'apx_decisions_total',
    help: 'Decisions served, by policy and outcome (allow, deny, rate_limited, error).',
    labelNames: ['policy', 'outcome'],
    registers: [this.registry],
  });
  readonly policyReady = new Gauge({
    name: 'apx_policy_ready',
    help: '1 when a configured policy has a verified version serving, else 0.',
    labelNames: ['policy'],
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'apx_policy_reloads_total',
    help: 'Hot reloads of a new version, by result (swapped, rejected).',
    labelNames: ['policy', 'result'],
    registers: [this.registry],
  });
}
