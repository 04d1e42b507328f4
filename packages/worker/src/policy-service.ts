import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type ArtifactRef,
  CoreErrorCode,
  formatArtifactRef,
  loadTrustedRoot,
  type SigstoreTrustedRoot,
  VerificationError,
} from '@apx/core';
import { DiskCache } from './cache.js';
import type { WorkerConfig } from './config.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { RollbackFloors } from './floors.js';
import { keyProviderFromRef, keysTrustOf, type TrustedKeyProvider } from './keys.js';
import { isKmsKeyRef } from './kms-key.js';
import { PolicyLoader } from './loader.js';
import { createObservers } from './observability/events.js';
import { createLogger, logPolicyFault, type WorkerLogger } from './observability/logger.js';
import { WorkerMetrics } from './observability/metrics.js';
import { policyHostRuntime } from './policy-runtime.js';
import { PolicySet, type PolicySetObserver } from './policy-set.js';
import type { RefreshingKeyOptions } from './refreshing-key.js';
import type { RuntimeFactory } from './runtime.js';
import { SECRET_VERSION_REF } from './secret-manager.js';
import type { ArtifactSource } from './source.js';
import { openArtifactSource } from './store-source.js';
import type { WorkerTrust } from './trust/worker-trust.js';
import type { WorkerDeps } from './worker.js';

/**
 * The verifying side of a worker: the store, the trust in force (one key, or the trust
 * repository), the loader with its rollback floors and caches, and the policy set that
 * decides what serves. The single-process worker serves from it directly; the multi-process
 * worker's primary owns the only one and hands what it verified to its serving children.
 */
export interface PolicyService {
  /** The configuration with its directories made absolute. */
  config: WorkerConfig;
  log: WorkerLogger;
  metrics: WorkerMetrics;
  source: ArtifactSource;
  policies: PolicySet;
  trust: WorkerTrust | undefined;
  /** Reports missing keys, applies the trust repository, loads every policy, starts the trust timer. */
  start(): Promise<void>;
  /** One trust refresh (when there is a trust repository) and one reload pass, now. */
  refresh(): Promise<void>;
  /** Stops timers and retries and releases keys and trust clients. */
  close(): Promise<void>;
}

export interface PolicyServiceOptions {
  /**
   * How verified artifacts become runtimes. Default: core's PolicyHost, its faults logged, a
   * decision past the deadline unloading its artifact (`stop`).
   */
  runtimeFactory?: (stop: (digest: string, reason: WorkerError) => void) => RuntimeFactory;
  /** Wraps the store and the disk cache (the cluster primary keeps the bytes it verifies). */
  wrapSource?: (source: ArtifactSource) => ArtifactSource;
  wrapDiskCache?: (dir: string) => DiskCache;
  /** Called after every event of the policy set (a swap, an unload, a retry...). */
  onSetChange?: () => void;
}

/** The policy set's observer, calling `changed` after each of its events. */
function notifying(observer: PolicySetObserver, changed: () => void): PolicySetObserver {
  const out = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(observer) as Array<[string, (...a: unknown[]) => void]>) {
    out[name] = (...args: unknown[]) => {
      fn.apply(observer, args);
      changed();
    };
  }
  return out as unknown as PolicySetObserver;
}

/** Logs each trusted key loaded or rotated, and each failed refresh (the last good key is kept). */
function keyHooks(log: WorkerLogger): Pick<RefreshingKeyOptions, 'onKeyLoaded' | 'onRefreshError'> {
  return {
    onKeyLoaded: (key, previous) =>
      log.info(
        { key_source: key.ref, key_version: key.version, key_id: key.keyId, previous_key_id: previous?.keyId ?? null },
        previous ? `trusted public key rotated: now ${key.version}` : `trusted public key loaded from ${key.version}`,
      ),
    onRefreshError: (err, kept) =>
      log.warn(
        { key_source: kept.ref, key_version: kept.version, key_id: kept.keyId, code: err.code, hint: err.hint ?? null },
        `${err.message} (keeping the last good key)`,
      ),
  };
}

export async function openPolicyService(
  given: WorkerConfig,
  warnings: string[],
  deps: WorkerDeps,
  options: PolicyServiceOptions = {},
): Promise<PolicyService> {
  // Directories are made absolute once, here: a relative path would follow the process's
  // working directory, and Node's recursive mkdir spins forever on a relative path once that
  // directory has been deleted.
  const config: WorkerConfig = {
    ...given,
    stateDir: given.stateDir === undefined ? undefined : resolve(deps.cwd, given.stateDir),
    cacheDir: given.cacheDir === undefined ? undefined : resolve(deps.cwd, given.cacheDir),
  };
  const log = createLogger(deps.logDestination);
  for (const w of warnings) log.warn({ setting: 'APX_STRICT_MODE' }, w);
  const metrics = new WorkerMetrics();
  const observers = createObservers(log, metrics);
  const opened = await (deps.openSource ?? ((url: string) => openArtifactSource(url, { env: deps.env, cwd: deps.cwd })))(
    config.store,
  );
  const source = options.wrapSource ? options.wrapSource(opened) : opened;
  // A decision stopped at its deadline unloads its artifact (set below, once the set exists).
  let stopArtifact: ((digest: string, reason: WorkerError) => void) | undefined;
  const stop = (digest: string, reason: WorkerError) => stopArtifact?.(digest, reason);
  const runtimeFactory =
    deps.runtimeFactory ??
    options.runtimeFactory?.(stop) ??
    policyHostRuntime((fault) => {
      logPolicyFault(log, fault);
      if (fault.kind !== 'deadline') return;
      metrics.deadlineExceeded.inc({ policy: fault.policy });
      stop(fault.digest, deadlineError(fault.policy, config.decisionDeadlineMs));
    }, config.decisionDeadlineMs);
  // Trust repository mode (APX_TRUST_REPOSITORY): the environment's signed targets role says
  // what may load and who signs; otherwise runbook mode, one trusted key (APX_PUBLIC_KEY).
  // The TUF client (tuf-js) loads only for workers that use a trust repository.
  const trust: WorkerTrust | undefined = config.trustRepository
    ? await (await import('./trust/worker-trust.js')).openWorkerTrust(config, {
        env: deps.env,
        cwd: deps.cwd,
        log,
        metrics,
        source,
      })
    : undefined;
  const keys: TrustedKeyProvider | undefined = trust
    ? undefined
    : (deps.keys ??
      keyProviderFromRef(config.publicKey, {
        env: deps.env,
        cwd: deps.cwd,
        secretManager: { refreshIntervalMs: config.keyRefreshMs, ...deps.secretManager, ...keyHooks(log) },
        kms: { refreshIntervalMs: config.keyRefreshMs, ...deps.kms, ...keyHooks(log) },
      }));
  reportProtections(config, trust !== undefined, log, metrics);
  const diskCache = config.cacheDir
    ? options.wrapDiskCache
      ? options.wrapDiskCache(config.cacheDir)
      : new DiskCache(config.cacheDir)
    : undefined;
  const loader = new PolicyLoader({
    source,
    trust: trust
      ? { kind: 'tuf', trustFor: (ref) => trust.watcher.trustFor(ref), refusal: () => trust.watcher.refusal() }
      : { kind: 'keys', trustFor: () => keysTrustOf(keys as TrustedKeyProvider) },
    strict: config.strict,
    allowList: config.allowList,
    runtimeFactory,
    observer: observers.load,
    memoryCacheEntries: config.memoryCacheEntries,
    binding: { environment: config.env, required: config.requireBinding },
    floors: config.stateDir ? await RollbackFloors.open(config.stateDir) : RollbackFloors.inMemory(),
    allowRollback: config.allowRollback,
    diskCache,
    trustedRoot: config.sigstoreTrustedRoot ? readSigstoreTrustedRoot(resolve(deps.cwd, config.sigstoreTrustedRoot)) : undefined,
    ...(deps.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: deps.fetchTimeoutMs }),
  });
  const policies = new PolicySet({
    loader,
    source,
    selectors: config.policies,
    allowList: config.allowList,
    reloadIntervalMs: config.reloadIntervalMs,
    observer: options.onSetChange ? notifying(observers.set, options.onSetChange) : observers.set,
    ...(trust
      ? {
          approved: {
            versions: (policyId: string) => trust.watcher.approvedVersions(policyId),
            policies: () => trust.watcher.policies(),
            // Core's words for a reference the environment's role does not list.
            refusal: (ref: ArtifactRef) =>
              new VerificationError(
                CoreErrorCode.NOT_APPROVED,
                `not approved for ${config.env}: ${formatArtifactRef(ref)} is not a target of the ${config.env} targets role`,
                { hint: `have the ${config.env} targets role approve the artifact, or load a version it approves` },
              ),
          },
        }
      : {}),
    ...(deps.retryMinMs === undefined ? {} : { retryMinMs: deps.retryMinMs }),
    ...(deps.discovery ? { discovery: deps.discovery } : {}),
  });
  stopArtifact = (digest, reason) => policies.stopDigest(digest, reason);
  metrics.describeServing(() => {
    const trustVersion = trustVersionOf(trust);
    return policies
      .list()
      .flatMap((s) =>
        s.current ? [{ policy: s.policyId, ref: s.current.refText, digest: s.current.artifact.digest, trustVersion }] : [],
      );
  });
  let trustTimer: NodeJS.Timeout | undefined;
  return {
    config,
    log,
    metrics,
    source,
    policies,
    trust,
    async start() {
      if (keys && !deps.keys && isLocalKeyRef(config.publicKey)) await reportMissingKey(keys, log);
      // The trust repository first: nothing unapproved or revoked is loaded even once.
      await trust?.refresh(policies);
      await policies.start();
      // A worker that cannot serve anything says so once, with the fix (and /readyz says why).
      const readiness = policies.readiness();
      if (!readiness.ready && policies.list().every((s) => !s.current)) {
        log.error({ ready: false }, `not ready, no policy serves: ${readiness.reason}`);
      }
      if (trust && config.reloadIntervalMs > 0) {
        trustTimer = setInterval(() => void trust.refresh(policies), config.reloadIntervalMs);
        trustTimer.unref();
      }
    },
    async refresh() {
      await trust?.refresh(policies);
      await policies.reload();
    },
    async close() {
      if (trustTimer) clearInterval(trustTimer);
      policies.stop();
      if (!deps.keys) await keys?.close?.();
      await trust?.close();
    },
  };
}

/** The trust repository's snapshot version in force, as apx_policy_info labels it ("none" in runbook mode). */
export function trustVersionOf(trust: WorkerTrust | undefined): string {
  return trust ? String(trust.watcher.view?.versions.snapshot ?? 'none') : 'none';
}

/** Why an artifact whose decision ran past APX_DECISION_DEADLINE_MS no longer serves. */
export function deadlineError(policy: string, deadlineMs: number): WorkerError {
  return new WorkerError(
    WorkerErrorCode.DECISION_DEADLINE_EXCEEDED,
    `${policy} stopped: a decision ran past APX_DECISION_DEADLINE_MS (${deadlineMs} ms)`,
    { hint: 'fix the policy and publish a new version; these bytes are not loaded again until the worker restarts' },
  );
}

/** A public key in a file or a variable: read at start, so that a missing one is said at once. */
function isLocalKeyRef(ref: string): boolean {
  return ref.startsWith('env://') || !(SECRET_VERSION_REF.test(ref) || isKmsKeyRef(ref));
}

/** Says at start, in one line with the fix, that the trusted key cannot be read (nothing could be verified). */
async function reportMissingKey(keys: TrustedKeyProvider, log: WorkerLogger): Promise<void> {
  try {
    await keys.verifier();
  } catch (err) {
    const e = err as { code?: string; message: string; hint?: string };
    log.error(
      { setting: 'APX_PUBLIC_KEY', reason: e.code ?? WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE },
      `${e.message}: no artifact can be verified${e.hint ? `; ${e.hint}` : ''}`,
    );
  }
}

/**
 * Says at start which protections are on. Runbook mode (one public key) verifies signatures
 * and bindings but has no revocation, no freshness and no multi-party approval: a production
 * worker in that mode says so in its log and in apx_trust_protection_enabled.
 */
function reportProtections(config: WorkerConfig, repository: boolean, log: WorkerLogger, metrics: WorkerMetrics): void {
  for (const p of ['revocation', 'freshness', 'approvals']) metrics.trustProtection.set({ protection: p }, repository ? 1 : 0);
  metrics.trustProtection.set({ protection: 'rollback' }, config.stateDir ? 1 : 0);
  if (repository || config.env === 'dev') return;
  log.warn(
    { setting: 'APX_TRUST_REPOSITORY', protections_off: ['revocation', 'freshness', 'approvals'] },
    `no trust repository (APX_TRUST_REPOSITORY unset): runbook mode trusts the APX_PUBLIC_KEY key alone; artifact revocation, freshness and multi-party approval are off`,
  );
}

/** APX_SIGSTORE_TRUSTED_ROOT, read once at start (a worker never fetches trust material). */
function readSigstoreTrustedRoot(path: string): SigstoreTrustedRoot {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      `APX_SIGSTORE_TRUSTED_ROOT="${path}" is not a JSON file: ${(err as Error).message}`,
      {
        hint: 'set APX_SIGSTORE_TRUSTED_ROOT to the trusted_root.json of your Sigstore instance',
      },
    );
  }
  return loadTrustedRoot(json, path);
}
