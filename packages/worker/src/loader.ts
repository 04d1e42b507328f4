import {
  type ArtifactRef,
  type AttestationKind,
  artifactFileName,
  assertVerifiedArtifact,
  CoreErrorCode,
  compareSemver,
  formatArtifactRef,
  isApxError,
  isVerificationError,
  MAX_ARTIFACT_BYTES,
  requiredKinds,
  type SigstoreTrustedRoot,
  sha256Hex,
  signatureMaterialDigest,
  type TrustInForce,
  VerificationError,
  type VerifiedArtifact,
  verifyPolicyArtifact,
} from '@apx/core';
import { StorageErrorCode } from '@apx/storage';
import type { AllowList } from './allow-list.js';
import { BoundedSet } from './bounded-set.js';
import { type DiskCache, MemoryCache } from './cache.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { RollbackFloors } from './floors.js';
import { LoadError } from './load-error.js';
import type { PolicyRuntime, RuntimeFactory } from './runtime.js';
import type { ArtifactMaterial, ArtifactSource } from './source.js';
import { trustFingerprint } from './trust-fingerprint.js';

export interface LoadedPolicy {
  ref: ArtifactRef;
  refText: string;
  artifact: VerifiedArtifact;
  runtime: PolicyRuntime;
  loadedAt: Date;
}

export type LoadSource = 'memory' | 'disk' | 'store';

/** Default bound of one download (artifact with its signature and bundle). */
export const DEFAULT_FETCH_TIMEOUT_MS = 60_000;

/** What the loader tells the service, which logs and counts (the loader does neither). */
export interface LoadObserver {
  loaded(policy: LoadedPolicy, source: LoadSource, seconds: number): void;
  /** `serving`: a hot reload's refusal, the reference that keeps serving. */
  rejected(error: LoadError, seconds: number, serving?: string): void;
  unsignedAccepted(ref: string, digest: string): void;
  diskEntryRejected(error: LoadError): void;
}

/**
 * Where the trust for a reference comes from: runbook mode's one key, or the environment's
 * signed targets role (trust repository), with why new loads are refused when it is stale.
 */
export type LoaderTrust =
  | { kind: 'keys'; trustFor(ref: ArtifactRef): Promise<TrustInForce> }
  | { kind: 'tuf'; trustFor(ref: ArtifactRef): TrustInForce; refusal(): string | undefined };

export interface PolicyLoaderOptions {
  source: ArtifactSource;
  trust: LoaderTrust;
  strict: boolean;
  allowList: AllowList | undefined;
  runtimeFactory: RuntimeFactory;
  observer: LoadObserver;
  memoryCacheEntries: number;
  diskCache?: DiskCache | undefined;
  maxBytes?: number;
  /** How long one download (artifact, signature, bundle) may take before it fails (default 60 s). */
  fetchTimeoutMs?: number;
  /**
   * The worker's environment and whether a signed binding (bundle statement) is required.
   * When a bundle is present it is always checked (name, version, size; the environment
   * too when required); when required and absent, the load fails.
   */
  binding: { environment: string; required: boolean };
  /** Rollback floors (persisted in APX_STATE_DIR outside development); default: in memory. */
  floors?: RollbackFloors;
  /** Exact references the operator allows below their floor (APX_ALLOW_ROLLBACK). */
  allowRollback?: ReadonlySet<string>;
  /** The Sigstore trusted root (APX_SIGSTORE_TRUSTED_ROOT) for keyless artifacts and timestamps. */
  trustedRoot?: SigstoreTrustedRoot | undefined;
}

/**
 * Loads a policy by reference in the runbook's order (Verification Flow): check cache, work
 * out the trust in force, download artifact and signature (and the attestations that trust
 * requires, no others), then core's verifyPolicyArtifact decides (allow-list, size, SHA-256,
 * rollback, signature, keyring, revocation, binding, attestations, WebAssembly, ABI, embedded
 * name), then instantiate. The loader only fetches material, hands core the trust and state
 * in force, and records what core decided (floors, blocked pairs). The bytes verified are the
 * bytes compiled: the Buffer the store read is handed to core as it is, core hashes it once
 * and compiles it, and returns the compiled Module. Concurrent loads of one reference share
 * one download.
 */
export class PolicyLoader {
  private readonly options: PolicyLoaderOptions;
  private readonly memory: MemoryCache<LoadedPolicy>;
  private readonly inflight = new Map<string, Promise<LoadedPolicy>>();
  /**
   * (artifact digest, signature material digest) pairs that failed signature verification:
   * refused on sight until restart. Pairs, never digests alone: a junk .sig beside genuine
   * bytes must not keep the genuine bytes with their genuine .sig out.
   */
  private readonly blocked = new BoundedSet<string>(10_000);
  /** Artifacts stopped at their decision deadline, by digest: never instantiated again until restart. */
  private readonly stopped = new Map<string, WorkerError>();
  private readonly floors: RollbackFloors;
  /** The fingerprint of the trust each artifact was verified under (see fromMemory). */
  private readonly verifiedUnder = new WeakMap<VerifiedArtifact, string>();

  constructor(options: PolicyLoaderOptions) {
    this.options = options;
    this.floors = options.floors ?? RollbackFloors.inMemory();
    this.memory = new MemoryCache(options.memoryCacheEntries);
  }

  get maxBytes(): number {
    return this.options.maxBytes ?? MAX_ARTIFACT_BYTES;
  }

  /** `context.serving`: a hot reload, and what keeps serving if this version is refused. */
  load(ref: ArtifactRef, context: { serving?: string | undefined } = {}): Promise<LoadedPolicy> {
    const refText = formatArtifactRef(ref);
    const cached = this.memory.get(refText);
    if (cached) return this.fromMemory(ref, refText, cached, context.serving);
    return this.loadFresh(ref, refText, context.serving);
  }

  /**
   * A load held in memory stands only under the trust it was verified with and above the
   * rollback floor: after a revocation, a removed signer, a new attestation requirement or a
   * risen floor, the reference goes back through core (from the disk cache or the store), so
   * an older version kept in memory cannot come back on the strength of a verdict the trust
   * repository has since withdrawn.
   */
  private async fromMemory(ref: ArtifactRef, refText: string, cached: LoadedPolicy, serving: string | undefined) {
    let trust: TrustInForce | undefined;
    try {
      trust = await this.trustNow(ref);
    } catch {
      trust = undefined; // the uncached path reports why the trust cannot be had
    }
    const floor = this.floors.get(ref.policyId);
    const belowFloor = floor !== undefined && compareSemver(ref.version, floor) < 0;
    if (trust && this.verifiedUnder.get(cached.artifact) === trustFingerprint(trust) && !belowFloor) {
      this.options.observer.loaded(cached, 'memory', 0);
      return cached;
    }
    this.memory.forgetDigest(cached.artifact.digest);
    return this.loadFresh(ref, refText, serving);
  }

  private loadFresh(ref: ArtifactRef, refText: string, serving: string | undefined): Promise<LoadedPolicy> {
    const pending = this.inflight.get(refText);
    if (pending) return pending;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const promise = this.loadUncached(ref, refText, seconds, serving).finally(() => this.inflight.delete(refText));
    this.inflight.set(refText, promise);
    return promise;
  }

  private async loadUncached(
    ref: ArtifactRef,
    refText: string,
    seconds: () => number,
    serving: string | undefined,
  ): Promise<LoadedPolicy> {
    // Freshness gates every new load (disk and store alike); what is loaded keeps serving.
    const stale = this.options.trust.kind === 'tuf' ? this.options.trust.refusal() : undefined;
    if (stale) {
      const hint = { hint: 'renew the trust repository (apx trust publish with the snapshot and timestamp keys)' };
      const error = new LoadError(ref, new WorkerError(WorkerErrorCode.TRUST_STALE, stale, hint));
      this.options.observer.rejected(error, seconds(), serving);
      throw error;
    }
    // What is read depends on the trust in force: attestations only when it requires them.
    let wanted: readonly AttestationKind[];
    try {
      wanted = attestationsRequired(await this.trustNow(ref));
    } catch (err) {
      const error = err instanceof LoadError ? err : new LoadError(ref, err);
      this.options.observer.rejected(error, seconds(), serving);
      throw error;
    }
    const disk = this.options.diskCache;
    if (disk) {
      const material = await disk.read(refText, wanted);
      if (material) {
        try {
          const reread = async (kinds: readonly AttestationKind[]) => {
            const again = await disk.read(refText, kinds);
            if (!again) throw new LoadError(ref, new Error(`the disk cache entry of ${refText} went away`));
            return again;
          };
          const { verified } = await this.verifyRead(ref, material, wanted, reread);
          return await this.finish(ref, refText, verified, 'disk', seconds);
        } catch (err) {
          // A bad disk entry is reported and dropped; the store is the source of truth.
          this.options.observer.diskEntryRejected(err instanceof LoadError ? err : new LoadError(ref, err));
          await disk.remove(refText);
        }
      }
    }
    try {
      const downloaded = await this.download(ref, wanted);
      const read = await this.verifyRead(ref, downloaded, wanted, (kinds) => this.download(ref, kinds));
      const fetched = read.material;
      return await this.finish(ref, refText, read.verified, 'store', seconds, async (digest) => {
        await disk?.write(refText, digest, fetched).catch(() => undefined);
      });
    } catch (err) {
      const error = err instanceof LoadError ? err : new LoadError(ref, err);
      this.options.observer.rejected(error, seconds(), serving);
      throw error;
    }
  }

  private async trustNow(ref: ArtifactRef): Promise<TrustInForce> {
    try {
      return await this.options.trust.trustFor(ref);
    } catch (err) {
      throw new LoadError(ref, err);
    }
  }

  /**
   * Verifies what was read with the trust in force once it is read (a revocation that arrived
   * during the read is not missed). Should that trust require an attestation the read left out
   * (a requirement that arrived meanwhile), the material is read again, once, with it; missing
   * still, core refuses it.
   */
  private async verifyRead(
    ref: ArtifactRef,
    material: ArtifactMaterial,
    read: readonly AttestationKind[],
    reread: (kinds: readonly AttestationKind[]) => Promise<ArtifactMaterial>,
  ): Promise<{ verified: VerifiedArtifact; material: ArtifactMaterial }> {
    let trust = await this.trustNow(ref);
    const needed = attestationsRequired(trust);
    if (needed.some((kind) => !read.includes(kind))) {
      material = await reread(needed);
      trust = await this.trustNow(ref);
    }
    return { verified: this.verify(ref, material, trust), material };
  }

  /**
   * One download, bounded in time: the store is asked to stop at the deadline (its signal), and
   * a store that does not listen still cannot hold the load (or the retries behind it) past it.
   */
  private fetchWithin(ref: ArtifactRef, attestations: readonly AttestationKind[]): Promise<ArtifactMaterial | undefined> {
    const { source } = this.options;
    const ms = this.options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new WorkerError(
              WorkerErrorCode.STORE_UNAVAILABLE,
              `store unavailable: ${source.url}: downloading ${artifactFileName(ref)} took longer than ${ms / 1000} s`,
              { hint: 'check that the store is reachable and responsive; the worker keeps serving what it has and retries' },
            ),
          ),
        ms,
      );
      timer.unref();
      source
        .fetch(ref, {
          maxBytes: this.maxBytes,
          signal: AbortSignal.timeout(ms),
          ...(attestations.length > 0 ? { attestations } : {}),
        })
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }

  private async download(ref: ArtifactRef, attestations: readonly AttestationKind[]): Promise<ArtifactMaterial> {
    const { source } = this.options;
    let material: ArtifactMaterial | undefined;
    try {
      material = await this.fetchWithin(ref, attestations);
    } catch (err) {
      // The store enforces the cap while streaming; report it under core's code, one label.
      if (isApxError(err) && err.code === StorageErrorCode.TOO_LARGE) {
        throw new LoadError(
          ref,
          new VerificationError(CoreErrorCode.ARTIFACT_TOO_LARGE, err.message, err.hint ? { hint: err.hint } : {}),
        );
      }
      if (isApxError(err)) throw new LoadError(ref, err);
      throw new LoadError(
        ref,
        new WorkerError(WorkerErrorCode.STORE_UNAVAILABLE, `store unavailable: ${source.url}: ${(err as Error).message}`, {
          hint: 'check APX_STORE and that the store is reachable; the worker keeps serving what it has and retries',
          cause: err,
        }),
      );
    }
    if (!material) {
      throw new LoadError(
        ref,
        new WorkerError(WorkerErrorCode.ARTIFACT_NOT_FOUND, `artifact not found: ${artifactFileName(ref)} in ${source.url}`, {
          hint: 'publish it (apx publish) or fix APX_POLICIES',
        }),
      );
    }
    return material;
  }

  private verify(ref: ArtifactRef, material: ArtifactMaterial, trust: TrustInForce): VerifiedArtifact {
    const { allowList, strict, binding } = this.options;
    const refText = formatArtifactRef(ref);
    try {
      const verified = verifyPolicyArtifact({
        material: {
          ref,
          // The Buffer the store read, as it is: core hashes exactly these bytes and compiles them.
          artifact: material.artifact,
          signature: material.signature,
          bundle: material.bundle,
          attestations: { sbom: material.sbom, provenance: material.provenance },
        },
        trust,
        policy: {
          environment: binding.environment,
          strict,
          requireBinding: binding.required,
          allowList,
          maxBytes: this.maxBytes,
          trustedRoot: this.options.trustedRoot,
        },
        state: {
          floor: this.floors.get(ref.policyId),
          allowRollback: this.options.allowRollback?.has(refText) === true,
          blocked: (digest, signatureDigest) => this.blocked.has(`${digest} ${signatureDigest}`),
        },
      });
      if (verified.keyId === null) this.options.observer.unsignedAccepted(refText, verified.digest);
      this.verifiedUnder.set(verified, trustFingerprint(trust));
      return verified;
    } catch (err) {
      // Core names the verdicts that condemn this exact pair; only the pair is blocked.
      const digest = isVerificationError(err) && err.code === CoreErrorCode.ARTIFACT_TOO_LARGE ? undefined : digestOf(material);
      if (digest && isVerificationError(err) && err.blocksPair) {
        this.blocked.add(`${digest} ${signatureMaterialDigest(material.signature, material.bundle)}`);
      }
      throw new LoadError(ref, err, digest);
    }
  }

  private async finish(
    ref: ArtifactRef,
    refText: string,
    artifact: VerifiedArtifact,
    source: LoadSource,
    seconds: () => number,
    persist?: (digest: string) => Promise<void>,
  ): Promise<LoadedPolicy> {
    let runtime: PolicyRuntime;
    const stopped = this.stopped.get(artifact.digest);
    if (stopped) throw new LoadError(ref, stopped, artifact.digest);
    try {
      // Whatever runtime is plugged in, it only ever receives what core verified.
      assertVerifiedArtifact(artifact);
      runtime = this.options.runtimeFactory(artifact);
    } catch (err) {
      throw new LoadError(
        ref,
        isApxError(err)
          ? err
          : new WorkerError(WorkerErrorCode.INSTANTIATION_FAILED, `cannot instantiate: ${(err as Error).message}`, {
              cause: err,
            }),
        artifact.digest,
      );
    }
    const loaded: LoadedPolicy = { ref, refText, artifact, runtime, loadedAt: new Date() };
    try {
      // Saved before the load is reported: a restart right after must still know the floor.
      await this.floors.raise(ref.policyId, ref.version);
    } catch (err) {
      throw new LoadError(ref, err, artifact.digest);
    }
    await persist?.(artifact.digest);
    this.memory.set(refText, loaded);
    this.options.observer.loaded(loaded, source, seconds());
    return loaded;
  }

  /** Forget a loaded digest everywhere (its approval was withdrawn). */
  forget(digest: string): void {
    this.memory.forgetDigest(digest);
  }

  /**
   * Refuses an artifact whose decision was stopped at its deadline: a request that looped
   * once loops again, so the same bytes are not instantiated again until restart.
   */
  stop(digest: string, reason: WorkerError): void {
    this.stopped.set(digest, reason);
    this.memory.forgetDigest(digest);
  }
}

/**
 * The attestations the trust in force requires (an environment role's `apx.attestations`): the
 * SBOM for a deny list or a VEX gate too, since the gate judges the components an SBOM names.
 * Runbook trust (one key) requires none.
 */
function attestationsRequired(trust: TrustInForce): readonly AttestationKind[] {
  return trust.kind === 'tuf' && trust.attestations ? requiredKinds(trust.attestations) : [];
}

/** The digest a failed load reports (computed only on failure: success carries core's). */
function digestOf(material: ArtifactMaterial): string {
  return `sha256:${sha256Hex(material.artifact)}`;
}
