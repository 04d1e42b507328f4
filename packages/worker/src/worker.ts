import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import {
  type ArtifactRef,
  CoreErrorCode,
  formatArtifactRef,
  loadTrustedRoot,
  type SigstoreTrustedRoot,
  VerificationError,
} from '@apx/core';
import { listenError } from '@apx/core/os-error';
import type { DestinationStream } from 'pino';
import { DiskCache } from './cache.js';
import type { WorkerConfig } from './config.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { RollbackFloors } from './floors.js';
import { createDecisionService, type DecisionDeps } from './gateway/decision-service.js';
import type { ExtAuthzServer } from './gateway/grpc/ext-authz-server.js';
import type { JwtVerifierOptions } from './jwt.js';
import { keyProviderFromRef, keysTrustOf, type TrustedKeyProvider } from './keys.js';
import { isKmsKeyRef } from './kms-key.js';
import { PolicyLoader } from './loader.js';
import { createObservers } from './observability/events.js';
import { createLogger, type WorkerLogger } from './observability/logger.js';
import { WorkerMetrics } from './observability/metrics.js';
import { policyHostRuntime } from './policy-runtime.js';
import { type DiscoveryLimits, PolicySet } from './policy-set.js';
import { RateLimiter } from './rate-limit.js';
import type { RefreshingKeyOptions } from './refreshing-key.js';
import type { RuntimeFactory } from './runtime.js';
import { SECRET_VERSION_REF, type SecretManagerKeyOptions } from './secret-manager.js';
import { createWorkerServer } from './server.js';
import type { ArtifactSource } from './source.js';
import { openArtifactSource } from './store-source.js';
import type { WorkerTrust } from './trust/worker-trust.js';

export interface WorkerDeps {
  /** Opens the store named by APX_STORE (default: @apx/storage by URL scheme). */
  openSource?: (url: string) => Promise<ArtifactSource>;
  /** Instantiates verified artifacts (default: core's PolicyHost, faults logged). */
  runtimeFactory?: RuntimeFactory;
  env: Record<string, string | undefined>;
  cwd: string;
  logDestination?: DestinationStream;
  /** Overrides APX_PUBLIC_KEY resolution (tests, KMS and secret stores). */
  keys?: TrustedKeyProvider;
  /** For an APX_PUBLIC_KEY in Secret Manager: client options (endpoint...), intervals, clock. The worker adds its log hooks. */
  secretManager?: Omit<SecretManagerKeyOptions, 'onKeyLoaded' | 'onRefreshError'>;
  /** For an APX_PUBLIC_KEY held by a KMS or HSM: intervals, clock. The worker adds its log hooks. */
  kms?: Omit<RefreshingKeyOptions, 'onKeyLoaded' | 'onRefreshError'>;
  retryMinMs?: number;
  /** Bounds of discovery (APX_POLICIES unset); default DEFAULT_DISCOVERY_LIMITS. */
  discovery?: Partial<DiscoveryLimits>;
  /** Bound of one download; default DEFAULT_FETCH_TIMEOUT_MS (60 s). */
  fetchTimeoutMs?: number;
  /** JWKS fetch options (tests). */
  jwt?: JwtVerifierOptions;
}

export interface RunningWorker {
  url: string;
  server: Server;
  policies: PolicySet;
  metrics: WorkerMetrics;
  log: WorkerLogger;
  /** One trust refresh (when there is a trust repository) and one reload pass, now. */
  refresh(): Promise<void>;
  /**
   * Graceful stop (SIGTERM): /readyz answers 503 at once while everything is still served for
   * APX_DRAIN_SECONDS, then stop(). Resolves once stopped; calling it again returns the same stop.
   */
  drain(): Promise<void>;
  /** True from the start of drain() on. */
  readonly draining: boolean;
  /** Closes the servers now: requests in flight finish (up to 5 s), new ones are refused. */
  stop(): Promise<void>;
}

/**
 * The run side's composition root: configuration in, a listening worker out. It starts
 * serving at once (liveness), loads the configured policies in the background of its
 * readiness, and never exits because a policy fails to load.
 */
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

export async function startWorker(given: WorkerConfig, warnings: string[], deps: WorkerDeps): Promise<RunningWorker> {
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
  const source = await (deps.openSource ?? ((url: string) => openArtifactSource(url, { env: deps.env, cwd: deps.cwd })))(
    config.store,
  );
  // A decision stopped at its deadline unloads its artifact (set below, once the set exists).
  let stopArtifact: ((digest: string, reason: WorkerError) => void) | undefined;
  const runtimeFactory =
    deps.runtimeFactory ??
    policyHostRuntime((fault) => {
      log.error(
        { policy_ref: fault.policy, digest: fault.digest, fault: fault.kind },
        `policy failed closed (deny): ${fault.message}`,
      );
      if (fault.kind !== 'deadline') return;
      metrics.deadlineExceeded.inc({ policy: fault.policy });
      stopArtifact?.(
        fault.digest,
        new WorkerError(
          WorkerErrorCode.DECISION_DEADLINE_EXCEEDED,
          `${fault.policy} stopped: a decision ran past APX_DECISION_DEADLINE_MS (${config.decisionDeadlineMs} ms)`,
          { hint: 'fix the policy and publish a new version; these bytes are not loaded again until the worker restarts' },
        ),
      );
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
    diskCache: config.cacheDir ? new DiskCache(config.cacheDir) : undefined,
    trustedRoot: config.sigstoreTrustedRoot ? readSigstoreTrustedRoot(resolve(deps.cwd, config.sigstoreTrustedRoot)) : undefined,
    ...(deps.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: deps.fetchTimeoutMs }),
  });
  const policies = new PolicySet({
    loader,
    source,
    selectors: config.policies,
    allowList: config.allowList,
    reloadIntervalMs: config.reloadIntervalMs,
    observer: observers.set,
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
    const trustVersion = trust ? String(trust.watcher.view?.versions.snapshot ?? 'none') : 'none';
    return policies
      .list()
      .flatMap((s) =>
        s.current ? [{ policy: s.policyId, ref: s.current.refText, digest: s.current.artifact.digest, trustVersion }] : [],
      );
  });
  // One set of decision dependencies (one rate limiter) for HTTP and the gRPC ext_authz service.
  const decisionDeps: DecisionDeps = {
    policies,
    metrics,
    limiter: new RateLimiter(),
    ...(deps.jwt ? { jwt: deps.jwt } : {}),
    // Gateways, HTTP side (issue 13).
    log,
    ...(config.defaultPolicy ? { defaultPolicy: config.defaultPolicy } : {}),
    dryRun: config.dryRun,
    decisionLogSample: config.decisionLogSample,
  };
  let draining = false;
  const server = createWorkerServer({ ...decisionDeps, trustedProxies: config.trustedProxies, draining: () => draining });
  if (config.dryRun !== false) {
    const which = config.dryRun === true ? 'every policy' : [...config.dryRun].join(', ');
    log.warn({ setting: 'APX_DRY_RUN' }, `dry run on for ${which}: denials are allowed, logged and counted, not enforced`);
  }
  await new Promise<void>((resolve, reject) => {
    // A port in use or a host that is not this machine's is the operator's to fix: one clear error.
    const listenOp = { host: config.host, port: config.port, hostSetting: '--host / APX_HOST', portSetting: '--port / APX_PORT' };
    server.once('error', (err) => reject(listenError(err, listenOp) ?? err));
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  // Envoy ext_authz over gRPC (APX_GRPC_PORT): the gRPC stack and the Envoy protos load only when served.
  let grpc: ExtAuthzServer | undefined;
  if (config.grpcPort !== undefined) {
    try {
      const { startExtAuthzServer } = await import('./gateway/grpc/ext-authz-server.js');
      grpc = await startExtAuthzServer({
        host: config.host,
        port: config.grpcPort,
        decisions: createDecisionService(decisionDeps),
        ...(config.defaultPolicy ? { defaultPolicy: config.defaultPolicy } : {}),
        settings: { host: '--host / APX_HOST', port: '--grpc-port / APX_GRPC_PORT' },
        onInternalError: (err) => log.error({ err: err.message }, `ext_authz Check failed inside the worker: ${err.message}`),
      });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    log.info({ grpc_address: grpc.address }, `ext_authz gRPC listening on ${grpc.address}`);
  }
  log.info(
    {
      env: config.env,
      store: source.url,
      strict: config.strict,
      allowed_versions: config.allowList?.toString() ?? null,
      state_dir: config.stateDir ?? null,
      trust_repository: trust ? trust.watcher.storeUrl : null,
      url,
    },
    `worker listening on ${url}`,
  );
  if (keys && !deps.keys && isLocalKeyRef(config.publicKey)) await reportMissingKey(keys, log);
  // The trust repository first: nothing unapproved or revoked is loaded even once.
  await trust?.refresh(policies);
  await policies.start();
  // A worker that cannot serve anything says so once, with the fix (and /readyz says why).
  const readiness = policies.readiness();
  if (!readiness.ready && policies.list().every((s) => !s.current)) {
    log.error({ ready: false }, `not ready, no policy serves: ${readiness.reason}`);
  }
  let trustTimer: NodeJS.Timeout | undefined;
  if (trust && config.reloadIntervalMs > 0) {
    trustTimer = setInterval(() => void trust.refresh(policies), config.reloadIntervalMs);
    trustTimer.unref();
  }
  let drained: Promise<void> | undefined;
  let endDrain: (() => void) | undefined;
  let stopped: Promise<void> | undefined;
  const running: RunningWorker = {
    url,
    server,
    policies,
    metrics,
    log,
    async refresh() {
      await trust?.refresh(policies);
      await policies.reload();
    },
    get draining() {
      return draining;
    },
    drain() {
      drained ??= (async () => {
        draining = true;
        const seconds = config.drainMs / 1000;
        log.info(
          { drain_seconds: seconds },
          `draining: /readyz answers 503, requests are served for ${seconds} s more (APX_DRAIN_SECONDS), then the servers close`,
        );
        // stop() during the drain ends it.
        if (config.drainMs > 0) {
          await new Promise<void>((r) => {
            const timer = setTimeout(r, config.drainMs);
            endDrain = () => {
              clearTimeout(timer);
              r();
            };
          });
        }
        log.info({ drain_seconds: seconds }, 'drain over: closing the servers; requests in flight finish');
        await running.stop();
      })();
      return drained;
    },
    stop() {
      endDrain?.();
      stopped ??= closeAll();
      return stopped;
    },
  };
  async function closeAll(): Promise<void> {
    if (trustTimer) clearInterval(trustTimer);
    policies.stop();
    // Finish requests in flight, drop idle keep-alive connections, then force the rest.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), 5000);
    force.unref();
    // Calls to Check in flight finish too (within the same 5 s); new ones are refused.
    await Promise.all([closed, grpc?.close(5000)]);
    clearTimeout(force);
    if (!deps.keys) await keys?.close?.();
    await trust?.close();
  }
  return running;
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
