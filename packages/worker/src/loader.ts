import {
  type ArtifactRef,
  acceptUnsignedArtifact,
  artifactFileName,
  CoreErrorCode,
  checkBinding,
  formatArtifactRef,
  isApxError,
  Keyring,
  type KeyringEntry,
  MAX_ARTIFACT_BYTES,
  type ParsedBundle,
  parseBundle,
  RevocationList,
  readBinding,
  type SignatureVerifier,
  sha256Hex,
  VerificationError,
  type VerifiedArtifact,
  verifyArtifact,
  verifyBundle,
} from '@apx/core';
import semver from 'semver';
import type { AllowList } from './allow-list.js';
import { type DiskCache, MemoryCache } from './cache.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { keyringOf, type TrustedKeyProvider } from './keys.js';
import { LoadError } from './load-error.js';
import type { PolicyRuntime, RuntimeFactory } from './runtime.js';
import type { ArtifactMaterial, ArtifactSource } from './source.js';

export interface LoadedPolicy {
  ref: ArtifactRef;
  refText: string;
  artifact: VerifiedArtifact;
  runtime: PolicyRuntime;
  loadedAt: Date;
}

export type LoadSource = 'memory' | 'disk' | 'store';

/** Verdicts on bytes or signatures that mark a digest as tampered: refused on sight afterwards. */
const BLOCKING = new Set<string>([
  CoreErrorCode.SIGNATURE_INVALID,
  CoreErrorCode.SIGNATURE_MALFORMED,
  CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
]);

/** What the loader tells the service, which logs and counts (the loader does neither). */
export interface LoadObserver {
  loaded(policy: LoadedPolicy, source: LoadSource, seconds: number): void;
  rejected(error: LoadError, seconds: number): void;
  unsignedAccepted(ref: string, digest: string): void;
  diskEntryRejected(error: LoadError): void;
}

export interface PolicyLoaderOptions {
  source: ArtifactSource;
  keys: TrustedKeyProvider;
  strict: boolean;
  allowList: AllowList | undefined;
  runtimeFactory: RuntimeFactory;
  observer: LoadObserver;
  memoryCacheEntries: number;
  diskCache?: DiskCache | undefined;
  maxBytes?: number;
  /**
   * The worker's environment and whether a signed binding (bundle statement) is required.
   * When a bundle is present it is always checked (name, version, size; the environment
   * too when required); when required and absent, the load fails.
   */
  binding: { environment: string; required: boolean };
  /** The revocation list in force (APX_REVOCATIONS); none when absent. */
  revocations?: () => RevocationList;
  /** Freshness (APX_INDEX): undefined when new loads may proceed, else why not. */
  freshness?: () => string | undefined;
}

/**
 * Loads a policy by reference in the runbook's order (Verification Flow): check cache,
 * download artifact and signature, version allow-list, signature present (strict mode),
 * public key, SHA-256, signature verification, size, magic bytes, validation, instantiate.
 * The bytes verified are the bytes compiled (verifyArtifact returns the compiled Module).
 * Concurrent loads of one reference share one download.
 */
export class PolicyLoader {
  private readonly options: PolicyLoaderOptions;
  private readonly memory: MemoryCache<LoadedPolicy>;
  private readonly inflight = new Map<string, Promise<LoadedPolicy>>();
  /** Highest version verified per policy (rollback protection; saved in APX_CACHE_DIR when set). */
  private readonly highest = new Map<string, string>();
  /** Digests that failed signature verification: refused on sight, never retried silently. */
  private readonly blocked = new Set<string>();

  constructor(options: PolicyLoaderOptions) {
    this.options = options;
    this.memory = new MemoryCache(options.memoryCacheEntries);
  }

  /** Restores rollback state saved in the disk cache by an earlier run. */
  async restore(): Promise<void> {
    const saved = (await this.options.diskCache?.readHighest()) ?? {};
    for (const [policyId, version] of Object.entries(saved)) {
      const known = this.highest.get(policyId);
      if (semver.valid(version) && (known === undefined || semver.gt(version, known))) this.highest.set(policyId, version);
    }
  }

  get maxBytes(): number {
    return this.options.maxBytes ?? MAX_ARTIFACT_BYTES;
  }

  load(ref: ArtifactRef): Promise<LoadedPolicy> {
    const refText = formatArtifactRef(ref);
    const cached = this.memory.get(refText);
    if (cached) {
      this.options.observer.loaded(cached, 'memory', 0);
      return Promise.resolve(cached);
    }
    const pending = this.inflight.get(refText);
    if (pending) return pending;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const promise = this.loadUncached(ref, refText, seconds).finally(() => this.inflight.delete(refText));
    this.inflight.set(refText, promise);
    return promise;
  }

  private async loadUncached(ref: ArtifactRef, refText: string, seconds: () => number): Promise<LoadedPolicy> {
    // Freshness gates every new load (disk and store alike); what is loaded keeps serving.
    const stale = this.options.freshness?.();
    if (stale) {
      const hint = { hint: 'publish a fresh policy index (apx index)' };
      const error = new LoadError(ref, new WorkerError(WorkerErrorCode.INDEX_EXPIRED, stale, hint));
      this.options.observer.rejected(error, seconds());
      throw error;
    }
    const disk = this.options.diskCache;
    if (disk) {
      const material = await disk.read(refText);
      if (material) {
        try {
          return await this.finish(ref, refText, await this.verify(ref, material), 'disk', seconds);
        } catch (err) {
          // A bad disk entry is reported and dropped; the store is the source of truth.
          this.options.observer.diskEntryRejected(err instanceof LoadError ? err : new LoadError(ref, err));
          await disk.remove(refText);
        }
      }
    }
    let material: ArtifactMaterial | undefined;
    try {
      material = await this.download(ref);
      const fetched = material;
      const loaded = await this.finish(ref, refText, await this.verify(ref, fetched), 'store', seconds, async (digest) => {
        await disk?.write(refText, digest, fetched).catch(() => undefined);
      });
      return loaded;
    } catch (err) {
      const error = err instanceof LoadError ? err : new LoadError(ref, err);
      this.options.observer.rejected(error, seconds());
      throw error;
    }
  }

  private async download(ref: ArtifactRef): Promise<ArtifactMaterial> {
    const { source } = this.options;
    let material: ArtifactMaterial | undefined;
    try {
      material = await source.fetch(ref, { maxBytes: this.maxBytes });
    } catch (err) {
      // The store enforces the cap while streaming; report it under core's code, one label.
      if (isApxError(err) && err.code === 'TOO_LARGE' && err.message.startsWith('artifact too large')) {
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

  private async verify(ref: ArtifactRef, material: ArtifactMaterial): Promise<VerifiedArtifact> {
    const { allowList, strict, keys } = this.options;
    const digest = `sha256:${sha256Hex(material.artifact)}`;
    const fail = (err: unknown): never => {
      throw new LoadError(ref, err, digest);
    };
    if (allowList && !allowList.admits(ref.policyId, ref.version)) fail(allowList.rejection(ref.policyId, ref.version));
    // Rollback protection: never below the highest version verified for this policy, unless
    // the allow-list names this exact version (a deliberate rollback, not a replayed old artifact).
    const highest = this.highest.get(ref.policyId);
    if (highest !== undefined && semver.lt(ref.version, highest) && !allowList?.namesExplicitly(ref.policyId, ref.version)) {
      fail(
        new WorkerError(
          WorkerErrorCode.ROLLBACK_REFUSED,
          `rollback refused: ${ref.policyId}@${ref.version} is older than ${highest}, the highest version verified for ${ref.policyId}`,
          { hint: `to roll back on purpose, name ${ref.policyId}@${ref.version} in ALLOWED_POLICY_VERSIONS` },
        ),
      );
    }
    if (!material.signature) {
      if (strict) {
        fail(
          new VerificationError(
            CoreErrorCode.SIGNATURE_MISSING,
            `signature file not found: ${artifactFileName(ref)}.sig (strict mode enabled)`,
            { hint: 'sign the artifact (apx sign) and publish the .sig beside it' },
          ),
        );
      }
      try {
        this.checkRevoked(ref, digest, null);
        const artifact = acceptUnsignedArtifact(material.artifact, { maxBytes: this.maxBytes });
        this.options.observer.unsignedAccepted(formatArtifactRef(ref), artifact.digest);
        return artifact;
      } catch (err) {
        return fail(err);
      }
    }
    if (this.blocked.has(digest)) {
      fail(
        new WorkerError(WorkerErrorCode.DIGEST_BLOCKED, `digest ${digest} is blocked: it failed signature verification before`, {
          hint: 'publish a correctly signed artifact; the tampered bytes stay blocked until the worker restarts',
        }),
      );
    }
    let keyring: Keyring;
    let bundle: ParsedBundle | undefined;
    try {
      keyring = await keyringOf(keys);
      bundle = material.bundle
        ? parseBundle(material.bundle.toString('utf8'), `${artifactFileName(ref)}.sigstore.json`)
        : undefined;
    } catch (err) {
      return fail(err);
    }
    try {
      // The bundle's hint names the key; without one every trusted key is tried.
      const hint = bundle?.format === 'sigstore' ? bundle.keyHint : undefined;
      let verified: { artifact: VerifiedArtifact; entry: KeyringEntry } | undefined;
      let firstFailure: unknown;
      for (const entry of keyring.candidates(hint)) {
        try {
          verified = {
            artifact: verifyArtifact(material.artifact, material.signature, entry.verifier, { maxBytes: this.maxBytes }),
            entry,
          };
          break;
        } catch (err) {
          if (!(isApxError(err) && err.code === CoreErrorCode.SIGNATURE_INVALID)) throw err;
          firstFailure ??= err;
        }
      }
      if (!verified) throw firstFailure;
      this.checkRevoked(ref, verified.artifact.digest, verified.entry.keyId);
      const signedAt = this.checkBinding(ref, material, bundle, verified.entry.verifier);
      // The keyring's verdict on this key: compromised, wrong environment, outside validity.
      Keyring.admit(verified.entry, this.options.binding.environment, signedAt, new Date());
      return verified.artifact;
    } catch (err) {
      if (isApxError(err) && BLOCKING.has(err.code)) this.blocked.add(digest);
      return fail(err);
    }
  }

  private checkRevoked(ref: ArtifactRef, digest: string, keyId: string | null): void {
    const entry = this.options.revocations?.().find(formatArtifactRef(ref), digest, keyId);
    if (entry) throw RevocationList.refusal(entry);
  }

  /**
   * Issue 5's signed binding: the bundle's DSSE statement, signed by the same trusted key,
   * must name this artifact's digest, reference, size and (when required) environment.
   * Returns the signing time the statement records, for the keyring's validity check.
   */
  private checkBinding(
    ref: ArtifactRef,
    material: ArtifactMaterial,
    bundle: ParsedBundle | undefined,
    verifier: SignatureVerifier,
  ): Date | undefined {
    const { environment, required } = this.options.binding;
    if (!bundle) {
      if (!required) return undefined;
      throw new VerificationError(
        CoreErrorCode.BINDING_MISSING,
        `signed binding not found: ${artifactFileName(ref)}.sigstore.json (required in ${environment})`,
        { hint: `sign the artifact with apx sign --env ${environment} and publish its bundle` },
      );
    }
    const result = verifyBundle(bundle, material.artifact, verifier);
    if (!result.statement) {
      if (!required) return undefined;
      throw new VerificationError(
        CoreErrorCode.BINDING_MISSING,
        `signed binding not found: the bundle of ${artifactFileName(ref)} has no statement`,
        {
          hint: `sign the artifact with apx sign --env ${environment}, which writes a binding statement`,
        },
      );
    }
    const binding = readBinding(result.statement);
    checkBinding(binding, {
      policyId: ref.policyId,
      version: ref.version,
      environment: required ? environment : undefined,
      size: material.artifact.byteLength,
    });
    return new Date(binding.signedAt);
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
    try {
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
    const highest = this.highest.get(ref.policyId);
    if (highest === undefined || semver.gt(ref.version, highest)) {
      this.highest.set(ref.policyId, ref.version);
      // Saved before the load is reported: a restart right after must still know the floor.
      await this.options.diskCache?.writeHighest(Object.fromEntries(this.highest)).catch(() => undefined);
    }
    await persist?.(artifact.digest);
    this.memory.set(refText, loaded);
    this.options.observer.loaded(loaded, source, seconds());
    return loaded;
  }

  /** Forget a loaded digest everywhere (revocation, issue 5 builds on this). */
  forget(digest: string): void {
    this.memory.forgetDigest(digest);
  }
}
