// The worker's trust repository mode (APX_TRUST_REPOSITORY): opens the repository's store and
// the TUF client, and on every refresh applies what changed: new versions in force, approvals
// withdrawn (unloaded at once), freshness (stop new loads, then stop serving).

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  type ApxError,
  affectingAdvisory,
  CoreErrorCode,
  describeIdentityPolicy,
  VerificationError,
  vulnerableComponent,
} from '@apx/core';
import { DEFAULT_MAX_BYTES, openStore } from '@apx/storage';
import { TrustClient, TrustErrorCode, type TrustView } from '@apx/trust';
import type { WorkerConfig } from '../config.js';
import { WorkerError, WorkerErrorCode } from '../error.js';
import type { LoadedPolicy } from '../loader.js';
import type { WorkerLogger } from '../observability/logger.js';
import type { WorkerMetrics } from '../observability/metrics.js';
import type { PolicySet } from '../policy-set.js';
import type { ArtifactSource } from '../source.js';
import { RepositoryWatcher } from './repository-watcher.js';

/** Refusals that mean someone tampers with the trust repository, not that it is unreachable. */
const ATTACKS = new Set<string>([
  TrustErrorCode.ROLLBACK,
  TrustErrorCode.SIGNATURE_THRESHOLD,
  TrustErrorCode.MISMATCH,
  TrustErrorCode.METADATA_INVALID,
  TrustErrorCode.TOO_LARGE,
  TrustErrorCode.DUPLICATE_KEY,
]);

export interface WorkerTrust {
  watcher: RepositoryWatcher;
  /** One refresh, then withdrawals and freshness applied to what serves. */
  refresh(policies: PolicySet): Promise<void>;
  /** Releases the trust repository's own store client, if it has one. */
  close(): Promise<void>;
}

export interface WorkerTrustDeps {
  env: Record<string, string | undefined>;
  cwd: string;
  log: WorkerLogger;
  metrics: WorkerMetrics;
  /** The worker's artifact source: with APX_TRUST_REPOSITORY=store the repository is read through it. */
  source: ArtifactSource;
  now?: () => Date;
}

async function bootstrapRoot(config: WorkerConfig, cwd: string): Promise<Buffer | undefined> {
  if (!config.trustRoot) return undefined;
  const path = resolve(cwd, config.trustRoot);
  try {
    return await readFile(path);
  } catch (err) {
    throw new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      `trust root not readable: ${config.trustRoot} (${(err as Error).message})`,
      {
        hint: "set APX_TRUST_ROOT to a copy of the repository's tuf/1.root.json obtained out of band",
      },
    );
  }
}

/**
 * The VEX gate on what already serves: a VEX document that arrives with the environment's role
 * (apx trust vex) unloads an artifact whose verified SBOM names an affected, unresolved
 * component version. Artifacts loaded without an SBOM check (no gate then) are not judged here.
 */
function vexWithdrawal(loaded: LoadedPolicy, view: TrustView | undefined): ApxError | undefined {
  const advisories = view?.attestations?.vulnerabilities ?? [];
  if (advisories.length === 0) return undefined;
  for (const purl of loaded.artifact.attestations?.sbom?.components ?? []) {
    const advisory = affectingAdvisory(purl, advisories);
    if (advisory) return vulnerableComponent(view?.environment ?? '', purl, advisory);
  }
  return undefined;
}

export async function openWorkerTrust(config: WorkerConfig, deps: WorkerTrustDeps): Promise<WorkerTrust | undefined> {
  if (!config.trustRepository) return undefined;
  const { log, metrics } = deps;
  // In the artifact store: read through the worker's own source (one client, one set of
  // credentials). Elsewhere: a store of its own, closed with the worker.
  const own =
    config.trustRepository === 'store' ? undefined : await openStore(config.trustRepository, { env: deps.env, cwd: deps.cwd });
  const store = own ?? {
    url: deps.source.url,
    get: (name: string, options?: { maxBytes?: number }) => deps.source.getObject(name, options?.maxBytes ?? DEFAULT_MAX_BYTES),
  };
  const root = await bootstrapRoot(config, deps.cwd);
  const client = new TrustClient({
    store,
    stateDir: join(config.stateDir as string, 'tuf'),
    environment: config.env,
    ...(root ? { bootstrapRoot: root } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  const describe = (v: TrustView | undefined) =>
    v ? `${v.environment} version ${v.versions.environment} (timestamp ${v.versions.timestamp})` : 'nothing';
  const watcher = new RepositoryWatcher({
    client,
    graceMs: config.trustGraceMs,
    ...(deps.now ? { now: deps.now } : {}),
    onApplied(view, previous, fromState) {
      for (const [role, version] of Object.entries(view.versions)) metrics.trustMetadataVersion.set({ role }, version);
      metrics.trustExpiry.set(view.expires.getTime() / 1000);
      if (fromState) {
        log.warn(
          { trust_versions: view.versions, approved: view.targets.size, expires: view.expires.toISOString() },
          `trust repository unavailable at start: serving the state verified before, ${describe(view)}, until ${view.expires.toISOString()}`,
        );
        return;
      }
      if (previous && JSON.stringify(previous.versions) === JSON.stringify(view.versions)) return;
      log.info(
        {
          trust_versions: view.versions,
          approved: view.targets.size,
          signer_key_ids: view.signers.map((s) => s.keyId),
          ...(view.identities.length > 0
            ? { signer_identities: view.identities.map((s) => describeIdentityPolicy(s.identity)) }
            : {}),
          expires: view.expires.toISOString(),
        },
        `trust repository in force: ${describe(view)}, ${view.targets.size} approved artifact(s), expires ${view.expires.toISOString()}`,
      );
    },
    onRejected(error, kept) {
      metrics.trustRefreshFailures.inc({ reason: error.code });
      const fields: Record<string, unknown> = { reason: error.code, trust_repository: store.url };
      if (ATTACKS.has(error.code)) fields.security_event = 'trust_metadata_refused';
      log.error(fields, `trust repository refused, keeping ${describe(kept)}: ${error.message}`);
    },
  });
  const withdrawn = (loaded: LoadedPolicy): ApxError | undefined => {
    if (loaded.artifact.trust !== 'tuf') return undefined;
    const why = watcher.withdrawal(
      loaded.ref,
      loaded.artifact.digest,
      loaded.artifact.keyId,
      loaded.artifact.certificateIdentity,
    );
    if (!why) return vexWithdrawal(loaded, watcher.view);
    return new VerificationError(CoreErrorCode.REVOKED, why, {
      hint: 'the trust repository no longer approves this artifact; the highest version still approved loads in its place',
    });
  };
  let lastVersions = '';
  let lastState: string | undefined;
  return {
    watcher,
    async refresh(policies) {
      await watcher.refresh();
      const state = watcher.freshness();
      const versions = JSON.stringify(watcher.view?.versions ?? null);
      // What may load changed (new metadata, or fresh again): policies waiting out a backoff try now.
      const changed = (versions !== lastVersions || state !== lastState) && state === 'fresh';
      lastVersions = versions;
      lastState = state;
      metrics.trustFresh.set(state === 'fresh' ? 1 : 0);
      if (state === 'expired') {
        log.warn(
          { reason: WorkerErrorCode.TRUST_STALE, grace_end: watcher.graceEnd()?.toISOString() ?? null },
          `${watcher.refusal()}: refusing new loads, serving what is loaded until ${watcher.graceEnd()?.toISOString()}`,
        );
      } else if (state === 'past-grace' && watcher.view) {
        const unloaded = policies.unloadAll(`${watcher.refusal()} and the grace period is over`);
        if (unloaded > 0) {
          log.error(
            { reason: WorkerErrorCode.TRUST_STALE },
            `${watcher.refusal()}: grace period over, ${unloaded} serving version(s) unloaded`,
          );
        }
      }
      policies.applyWithdrawals(withdrawn);
      if (changed) await policies.retryWaiting();
    },
    async close() {
      await own?.close?.();
    },
  };
}
