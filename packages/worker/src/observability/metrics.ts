import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The worker's Prometheus metrics. The three runbook metrics keep their meaning:
 * verification_failures counts integrity failures (signature, digest, size, magic,
 * validation...) by reason code; unsigned_blocked and unknown_versions count their own
 * situations and are not double-counted as integrity failures.
 */
/** One serving version, as apx_policy_info labels it. */
export interface PolicyInfo {
  policy: string;
  ref: string;
  digest: string;
  /** The trust repository's snapshot version in force, or "none" (runbook mode). */
  trustVersion: string;
}

/**
 * A per-request counter: a plain number bumped on the hot path and added to its Prometheus
 * series when the registry is read, so counting a decision allocates nothing (prom-client
 * hashes the label set and returns a record on every inc(), labelled child or not).
 */
export interface DecisionTally {
  inc(): void;
}

class PendingCount implements DecisionTally {
  pending = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(): void {
    this.pending++;
  }
}

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #decisionTallies = new Map<string, PendingCount>();
  readonly #dryRunTallies = new Map<string, PendingCount>();

  /**
   * The tally of apx_decisions_total{policy,outcome} (outcome "dry_run": of
   * apx_decisions_dry_run_denied_total{policy}), one per label set, kept for reuse.
   */
  decisionTally(policy: string, outcome: string): DecisionTally {
    const dryRun = outcome === 'dry_run';
    const tallies = dryRun ? this.#dryRunTallies : this.#decisionTallies;
    const id = dryRun ? policy : `${policy}\u0000${outcome}`;
    let tally = tallies.get(id);
    if (tally === undefined) {
      tally = new PendingCount(dryRun ? { policy } : { policy, outcome });
      tallies.set(id, tally);
    }
    return tally;
  }

  /** Adds what the tallies counted since the last read to their series (called at each read). */
  #flush<L extends string>(tallies: Map<string, PendingCount>, counter: Counter<L>): void {
    for (const tally of tallies.values()) {
      if (tally.pending === 0) continue;
      counter.inc(tally.labels as Record<L, string>, tally.pending);
      tally.pending = 0;
    }
  }
  #servingNow: () => PolicyInfo[] = () => [];
  /**
   * The fleet view (issue 16): one series at 1 per serving version, built at each scrape from
   * what serves then, so a swap or an unload leaves no old label set behind.
   */
  readonly policyInfo: Gauge<'policy' | 'ref' | 'digest' | 'trust_version'> = new Gauge({
    name: 'apx_policy_info',
    help: 'The version each policy serves: 1 per serving (policy, ref, digest) with the trust repository\'s snapshot version in force (trust_version, "none" in runbook mode).',
    labelNames: ['policy', 'ref', 'digest', 'trust_version'],
    registers: [this.registry],
    collect: () => {
      this.policyInfo.reset();
      for (const p of this.#servingNow())
        this.policyInfo.set({ policy: p.policy, ref: p.ref, digest: p.digest, trust_version: p.trustVersion }, 1);
    },
  });
  /** What apx_policy_info reports, read at each scrape. */
  describeServing(servingNow: () => PolicyInfo[]): void {
    this.#servingNow = servingNow;
  }
  readonly verificationFailures = new Counter({
    name: 'apx_artifacts_verification_failures_total',
    help: 'Artifacts refused by verification, by reason code, once per distinct (reference, digest, reason) however often retried; every reason exists from start at 0 (apx.artifacts.verification_failures).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly unsignedBlocked = new Counter({
    name: 'apx_artifacts_unsigned_blocked_total',
    help: 'Unsigned artifacts refused in strict mode, once per distinct artifact (apx.artifacts.unsigned_blocked).',
    registers: [this.registry],
  });
  readonly unknownVersions = new Counter({
    name: 'apx_artifacts_unknown_versions_total',
    help: 'Versions refused or left aside because the allow-list or the trust repository does not admit them, once per distinct artifact found (apx.artifacts.unknown_versions).',
    registers: [this.registry],
  });
  readonly revokedBlocked = new Counter({
    name: 'apx_artifacts_revoked_blocked_total',
    help: 'Serving artifacts unloaded because the trust repository withdrew their approval.',
    registers: [this.registry],
  });
  readonly trustMetadataVersion = new Gauge({
    name: 'apx_trust_metadata_version',
    help: 'Version of each trust repository role in force (root, timestamp, snapshot, targets, environment).',
    labelNames: ['role'],
    registers: [this.registry],
  });
  readonly trustExpiry = new Gauge({
    name: 'apx_trust_metadata_expiry_timestamp_seconds',
    help: 'When the trust metadata in force expires (the earliest expiry of its roles), as a Unix time.',
    registers: [this.registry],
  });
  readonly trustFresh = new Gauge({
    name: 'apx_trust_fresh',
    help: '1 while the trust metadata in force is unexpired (new loads allowed), else 0.',
    registers: [this.registry],
  });
  readonly trustRefreshFailures = new Counter({
    name: 'apx_trust_refresh_failures_total',
    help: 'Trust repository refreshes refused or failed, by reason (ROLLBACK, EXPIRED, SIGNATURE_THRESHOLD, MISMATCH...).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly trustProtection = new Gauge({
    name: 'apx_trust_protection_enabled',
    help: '1 when a protection is on (revocation, freshness, approvals: the trust repository; rollback: APX_STATE_DIR), else 0.',
    labelNames: ['protection'],
    registers: [this.registry],
  });
  readonly storeObjectsIgnored = new Gauge({
    name: 'apx_store_objects_ignored',
    help: 'Objects or policies the last discovery listing left aside: misnamed .wasm objects, objects past the listing cap, policies past the discovery cap.',
    labelNames: ['reason'],
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
  readonly decisions: Counter<'policy' | 'outcome'> = new Counter({
    name: 'apx_decisions_total',
    help: 'Decisions served, by policy and outcome (allow, deny, rate_limited, error).',
    labelNames: ['policy', 'outcome'],
    registers: [this.registry],
    collect: (): void => this.#flush(this.#decisionTallies, this.decisions),
  });
  readonly dryRunDenied: Counter<'policy'> = new Counter({
    name: 'apx_decisions_dry_run_denied_total',
    help: 'Denials (policy denials and rate limits) let through because the policy runs in dry run (APX_DRY_RUN), by policy.',
    labelNames: ['policy'],
    registers: [this.registry],
    collect: (): void => this.#flush(this.#dryRunTallies, this.dryRunDenied),
  });
  readonly policyReady = new Gauge({
    name: 'apx_policy_ready',
    help: '1 when a configured policy has a verified version serving, else 0.',
    labelNames: ['policy'],
    registers: [this.registry],
  });
  readonly deadlineExceeded = new Counter({
    name: 'apx_policy_deadline_exceeded_total',
    help: 'Decisions stopped at APX_DECISION_DEADLINE_MS, by policy reference (the artifact is then unloaded).',
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
