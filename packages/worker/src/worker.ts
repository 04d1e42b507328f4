import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenError } from '@apx/core/os-error';
import type { DestinationStream } from 'pino';
import type { WorkerConfig } from './config.js';
import { createDecisionService, type DecisionDeps, type DecisionService } from './gateway/decision-service.js';
import type { ExtAuthzServer } from './gateway/grpc/ext-authz-server.js';
import type { JwtVerifierOptions } from './jwt.js';
import type { TrustedKeyProvider } from './keys.js';
import type { WorkerLogger } from './observability/logger.js';
import type { WorkerMetrics } from './observability/metrics.js';
import { openPolicyService, type PolicyService } from './policy-service.js';
import type { DiscoveryLimits, PolicySet } from './policy-set.js';
import { RateLimiter } from './rate-limit.js';
import type { RefreshingKeyOptions } from './refreshing-key.js';
import type { RuntimeFactory } from './runtime.js';
import type { SecretManagerKeyOptions } from './secret-manager.js';
import { createWorkerServer } from './server.js';
import type { ArtifactSource } from './source.js';

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
 * readiness, and never exits because a policy fails to load. One process (APX_WORKERS=1);
 * the multi-process worker composes the same parts in cluster/.
 */
export async function startWorker(given: WorkerConfig, warnings: string[], deps: WorkerDeps): Promise<RunningWorker> {
  const service = await openPolicyService(given, warnings, deps);
  const { config, log, metrics, policies } = service;
  let draining = false;
  const servers = await openServers(config, decisionDepsOf(config, deps, { policies, metrics, log }), () => draining);
  logListening(config, service, servers, log);
  await service.start();
  let drained: Promise<void> | undefined;
  let endDrain: (() => void) | undefined;
  let stopped: Promise<void> | undefined;
  const running: RunningWorker = {
    url: servers.url,
    server: servers.http,
    policies,
    metrics,
    log,
    refresh: () => service.refresh(),
    get draining() {
      return draining;
    },
    drain() {
      drained ??= (async () => {
        draining = true;
        await drainFor(config.drainMs, log, (end) => {
          endDrain = end;
        });
        await running.stop();
      })();
      return drained;
    },
    stop() {
      endDrain?.();
      stopped ??= (async () => {
        service.policies.stop();
        await servers.close();
        await service.close();
      })();
      return stopped;
    },
  };
  return running;
}

/** The decision pipeline's dependencies (one rate limiter) for HTTP and the gRPC ext_authz service. */
export function decisionDepsOf(
  config: WorkerConfig,
  deps: Pick<WorkerDeps, 'jwt'>,
  parts: Pick<DecisionDeps, 'policies' | 'metrics' | 'log'>,
): DecisionDeps {
  return {
    ...parts,
    limiter: new RateLimiter(),
    ...(deps.jwt ? { jwt: deps.jwt } : {}),
    ...(config.defaultPolicy ? { defaultPolicy: config.defaultPolicy } : {}),
    dryRun: config.dryRun,
    decisionLogSample: config.decisionLogSample,
  };
}

/** The listening servers of one serving process: HTTP, and gRPC ext_authz when APX_GRPC_PORT is set. */
export interface Servers {
  http: Server;
  grpc: ExtAuthzServer | undefined;
  url: string;
  /** Finishes requests in flight (up to 5 s), refuses new ones. */
  close(): Promise<void>;
}

/** What a serving child of APX_WORKERS changes in its servers; the single process has none. */
export interface ServingHooks {
  /** Wraps the decision pipeline (cluster/request-gate.ts: held while the cluster switches sets). */
  decisions(service: DecisionService): DecisionService;
  /** What GET /metrics answers: the whole worker's. */
  metricsText(): Promise<{ text: string; contentType: string }>;
}

/** Opens the HTTP server (and the gRPC one) on one decision pipeline. */
export async function openServers(
  config: WorkerConfig,
  decisionDeps: DecisionDeps,
  draining: () => boolean,
  hooks?: ServingHooks,
): Promise<Servers> {
  const { log } = decisionDeps;
  const plain = createDecisionService(decisionDeps);
  const decisions = hooks ? hooks.decisions(plain) : plain;
  const server = createWorkerServer({
    ...decisionDeps,
    trustedProxies: config.trustedProxies,
    draining,
    decisions,
    ...(hooks ? { metricsText: hooks.metricsText } : {}),
  });
  if (config.dryRun !== false) {
    const which = config.dryRun === true ? 'every policy' : [...config.dryRun].join(', ');
    log?.warn({ setting: 'APX_DRY_RUN' }, `dry run on for ${which}: denials are allowed, logged and counted, not enforced`);
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
        decisions,
        ...(config.defaultPolicy ? { defaultPolicy: config.defaultPolicy } : {}),
        settings: { host: '--host / APX_HOST', port: '--grpc-port / APX_GRPC_PORT' },
        onInternalError: (err) => log?.error({ err: err.message }, `ext_authz Check failed inside the worker: ${err.message}`),
      });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    log?.info({ grpc_address: grpc.address }, `ext_authz gRPC listening on ${grpc.address}`);
  }
  const opened = grpc;
  return {
    http: server,
    grpc,
    url,
    async close() {
      // Finish requests in flight, drop idle keep-alive connections, then force the rest.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5000);
      force.unref();
      // Calls to Check in flight finish too (within the same 5 s); new ones are refused.
      await Promise.all([closed, opened?.close(5000)]);
      clearTimeout(force);
    },
  };
}

/** The start line operators and tests wait for: where the worker listens, and what it verifies with. */
export function logListening(
  config: WorkerConfig,
  service: Pick<PolicyService, 'source' | 'trust'>,
  servers: Pick<Servers, 'url'>,
  log: WorkerLogger,
  extra: Record<string, unknown> = {},
): void {
  log.info(
    {
      env: config.env,
      store: service.source.url,
      strict: config.strict,
      allowed_versions: config.allowList?.toString() ?? null,
      state_dir: config.stateDir ?? null,
      trust_repository: service.trust ? service.trust.watcher.storeUrl : null,
      url: servers.url,
      ...extra,
    },
    `worker listening on ${servers.url}`,
  );
}

/**
 * The drain's wait (SIGTERM): logs it, then waits APX_DRAIN_SECONDS unless ended early
 * (`onEnd` receives the function that ends it: stop() during the drain).
 */
export async function drainFor(drainMs: number, log: WorkerLogger, onEnd: (end: () => void) => void): Promise<void> {
  const seconds = drainMs / 1000;
  log.info(
    { drain_seconds: seconds },
    `draining: /readyz answers 503, requests are served for ${seconds} s more (APX_DRAIN_SECONDS), then the servers close`,
  );
  if (drainMs > 0) {
    await new Promise<void>((r) => {
      const timer = setTimeout(r, drainMs);
      onEnd(() => {
        clearTimeout(timer);
        r();
      });
    });
  }
  log.info({ drain_seconds: seconds }, 'drain over: closing the servers; requests in flight finish');
}
