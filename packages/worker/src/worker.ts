import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Keyring, PolicyIndex, RevocationList } from '@apx/core';
import type { DestinationStream } from 'pino';

const EMPTY_REVOCATIONS = RevocationList.empty();

import { DiskCache } from './cache.js';
import type { WorkerConfig } from './config.js';
import { RollbackFloors } from './floors.js';
import { Freshness } from './freshness.js';
import type { JwtVerifierOptions } from './jwt.js';
import { keyProviderFromRef, keyringOf, type TrustedKeyProvider } from './keys.js';
import { PolicyLoader } from './loader.js';
import { createObservers } from './observability/events.js';
import { createLogger, type WorkerLogger } from './observability/logger.js';
import { WorkerMetrics } from './observability/metrics.js';
import { policyHostRuntime } from './policy-runtime.js';
import { PolicySet } from './policy-set.js';
import { RateLimiter } from './rate-limit.js';
import type { RefreshingKeyOptions } from './refreshing-key.js';
import type { RuntimeFactory } from './runtime.js';
import type { SecretManagerKeyOptions } from './secret-manager.js';
import { createWorkerServer } from './server.js';
import type { ArtifactSource } from './source.js';
import { openArtifactSource } from './store-source.js';
import { TrustDocumentWatcher } from './trust-documents.js';

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
  /** JWKS fetch options (tests). */
  jwt?: JwtVerifierOptions;
}

export interface RunningWorker {
  url: string;
  server: Server;
  policies: PolicySet;
  metrics: WorkerMetrics;
  log: WorkerLogger;
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

export async function startWorker(config: WorkerConfig, warnings: string[], deps: WorkerDeps): Promise<RunningWorker> {
  const log = createLogger(deps.logDestination);
  for (const w of warnings) log.warn({ setting: 'APX_STRICT_MODE' }, w);
  const metrics = new WorkerMetrics();
  const observers = createObservers(log, metrics);
  const source = await (deps.openSource ?? ((url: string) => openArtifactSource(url, { env: deps.env, cwd: deps.cwd })))(
    config.store,
  );
  const runtimeFactory =
    deps.runtimeFactory ??
    policyHostRuntime((fault) =>
      log.error(
        { policy_ref: fault.policy, digest: fault.digest, fault: fault.kind },
        `policy failed closed (deny): ${fault.message}`,
      ),
    );
  const keys =
    deps.keys ??
    keyProviderFromRef(config.publicKey, {
      env: deps.env,
      cwd: deps.cwd,
      secretManager: { refreshIntervalMs: config.keyRefreshMs, ...deps.secretManager, ...keyHooks(log) },
      kms: { refreshIntervalMs: config.keyRefreshMs, ...deps.kms, ...keyHooks(log) },
    });
  // Key rotation: the keyring in force starts as APX_PUBLIC_KEY's and advances only along a
  // chain, each next keyring signed by an active key of the one before (APX_KEYRING).
  const keyringWatcher = config.keyring
    ? new TrustDocumentWatcher<Keyring>({
        object: 'keyring.json',
        location: config.keyring,
        source,
        keys,
        cwd: deps.cwd,
        verify: (text, sig, base, held, where) => Keyring.verifyNext(text, sig, held ?? base, where),
        version: (ring) => ring.version,
        onApplied: (ring) => {
          metrics.keyringVersion.set(ring.version);
          log.info(
            {
              keyring_version: ring.version,
              active_key_ids: ring.entries.filter((e) => e.status === 'active').map((e) => e.keyId),
            },
            `keyring version ${ring.version} in force`,
          );
        },
        onRejected: (err) => {
          metrics.keyringRejected.inc();
          log.error(
            { reason: 'KEYRING_INVALID' },
            `keyring refused, keeping version ${keyringWatcher?.current?.version ?? 0}: ${(err as Error).message}`,
          );
        },
      })
    : undefined;
  const trustKeys: TrustedKeyProvider = keyringWatcher
    ? {
        description: keys.description,
        verifier: () => keys.verifier(),
        keyring: async () => keyringWatcher.current ?? keyringOf(keys),
      }
    : keys;
  const revocations = config.revocations
    ? new TrustDocumentWatcher<RevocationList>({
        object: 'revocations.json',
        location: config.revocations,
        source,
        keys: trustKeys,
        cwd: deps.cwd,
        verify: (text, sig, keyring, held, where) => RevocationList.verify(text, sig, keyring, held ?? EMPTY_REVOCATIONS, where),
        version: (list) => list.version,
        onApplied: (list) => {
          metrics.revocationListVersion.set(list.version);
          log.info(
            { revocation_list_version: list.version, entries: list.entries.length },
            `revocation list version ${list.version} in force`,
          );
          policies.applyRevocations(list);
        },
        onRejected: (err) => {
          metrics.revocationListRejected.inc();
          log.error(
            { reason: 'REVOCATION_LIST_INVALID' },
            `revocation list refused, keeping version ${revocations?.current?.version ?? 0}: ${(err as Error).message}`,
          );
        },
      })
    : undefined;
  const freshness = config.index
    ? new Freshness(
        new TrustDocumentWatcher<PolicyIndex>({
          object: 'index.json',
          location: config.index,
          source,
          keys: trustKeys,
          cwd: deps.cwd,
          verify: (text, sig, keyring, held, where) => PolicyIndex.verify(text, sig, keyring, held, where),
          version: (index) => index.version,
          onApplied: (index) => {
            metrics.policyIndexVersion.set(index.version);
            log.info(
              { policy_index_version: index.version, expires: index.expires.toISOString() },
              `policy index version ${index.version} in force until ${index.expires.toISOString()}`,
            );
          },
          onRejected: (err) => {
            metrics.policyIndexRejected.inc();
            log.error({ reason: 'POLICY_INDEX_INVALID' }, `policy index refused: ${(err as Error).message}`);
          },
        }),
        config.indexGraceMs,
      )
    : undefined;
  const loader = new PolicyLoader({
    source,
    keys: trustKeys,
    strict: config.strict,
    allowList: config.allowList,
    runtimeFactory,
    observer: observers.load,
    memoryCacheEntries: config.memoryCacheEntries,
    binding: { environment: config.env, required: config.requireBinding },
    revocations: () => revocations?.current ?? EMPTY_REVOCATIONS,
    floors: config.stateDir ? await RollbackFloors.open(config.stateDir) : RollbackFloors.inMemory(),
    allowRollback: config.allowRollback,
    ...(freshness ? { freshness: () => freshness.check(new Date()) } : {}),
    diskCache: config.cacheDir ? new DiskCache(config.cacheDir) : undefined,
  });
  const policies = new PolicySet({
    loader,
    source,
    selectors: config.policies,
    allowList: config.allowList,
    reloadIntervalMs: config.reloadIntervalMs,
    observer: observers.set,
    ...(freshness ? { targetVersion: (policyId: string) => freshness.target(policyId) } : {}),
    ...(deps.retryMinMs === undefined ? {} : { retryMinMs: deps.retryMinMs }),
  });
  const server = createWorkerServer({ policies, metrics, limiter: new RateLimiter(), ...(deps.jwt ? { jwt: deps.jwt } : {}) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info(
    {
      env: config.env,
      store: source.url,
      strict: config.strict,
      allowed_versions: config.allowList?.toString() ?? null,
      state_dir: config.stateDir ?? null,
      url,
    },
    `worker listening on ${url}`,
  );
  // Trust documents first: nothing revoked is loaded even once, nothing without a fresh index.
  const refreshTrust = async () => {
    await keyringWatcher?.refresh();
    await revocations?.refresh();
    if (!freshness) return;
    await freshness.watcher.refresh();
    const state = freshness.state(new Date());
    metrics.policyIndexExpired.set(state === 'fresh' ? 0 : 1);
    if (state === 'expired') {
      log.warn(
        { reason: 'POLICY_INDEX_EXPIRED' },
        `${freshness.describe()}: refusing new loads, serving what is loaded until ${freshness.graceEnd()}`,
      );
    } else if (state === 'past-grace') {
      const unloaded = policies.unloadAll(`${freshness.describe()} and the grace period is over`);
      if (unloaded > 0) {
        log.error(
          { reason: 'POLICY_INDEX_EXPIRED' },
          `${freshness.describe()}: grace period over, ${unloaded} serving version(s) unloaded`,
        );
      }
    }
  };
  await refreshTrust();
  await policies.start();
  let revocationTimer: NodeJS.Timeout | undefined;
  if ((keyringWatcher || revocations || freshness) && config.reloadIntervalMs > 0) {
    revocationTimer = setInterval(() => void refreshTrust(), config.reloadIntervalMs);
    revocationTimer.unref();
  }
  return {
    url,
    server,
    policies,
    metrics,
    log,
    async stop() {
      if (revocationTimer) clearInterval(revocationTimer);
      policies.stop();
      // Finish requests in flight, drop idle keep-alive connections, then force the rest.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5000);
      force.unref();
      await closed;
      clearTimeout(force);
      if (!deps.keys) await keys.close?.();
    },
  };
}
