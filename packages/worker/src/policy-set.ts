import type { ApxError, ArtifactRef } from '@apx/core';
import semver from 'semver';
import type { AllowList } from './allow-list.js';
import type { PolicySelector } from './config.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { isVerifierRefusal, LoadError } from './load-error.js';
import type { LoadedPolicy, PolicyLoader } from './loader.js';
import type { ArtifactSource, StoreListing } from './source.js';

export interface PolicyState {
  policyId: string;
  /** Pinned version, or undefined to follow the highest admitted version. */
  pinned: string | undefined;
  /** What serves now; swapped in one assignment, so requests see old or new, never half. */
  current: LoadedPolicy | undefined;
  lastError: LoadError | undefined;
  failures: number;
  /**
   * Discovery mode: the last attempt found nothing the verifier accepts (every candidate
   * refused on its merits, or no candidate left). Such a policy never serves and is retried,
   * but it does not hold the worker's readiness: junk in a store must not take a fleet down.
   */
  refused: boolean;
}

/** What one discovery pass found, for the log and the metrics. */
export interface DiscoveryReport {
  storeUrl: string;
  listing: StoreListing;
  /** Policies found (in the listing, or approved by the trust repository). */
  policies: number;
  /** Policies not served because the cap was reached. */
  overCap: number;
  limits: DiscoveryLimits;
}

/** Bounds of what a worker reads from a store when it serves every policy in it. */
export interface DiscoveryLimits {
  /** Object names considered from one listing (the first by name). */
  maxObjects: number;
  /** Policies served at most (the first by name). */
  maxPolicies: number;
  /** A listing that takes longer fails (STORE_UNAVAILABLE) and is tried again at the next pass. */
  timeoutMs: number;
}

export const DEFAULT_DISCOVERY_LIMITS: DiscoveryLimits = { maxObjects: 100_000, maxPolicies: 1_000, timeoutMs: 30_000 };

/**
 * The policies of a listing in the order discovery takes them up to its cap: those with a
 * signature or bundle beside a version first (by name), then the others (by name). Junk
 * without signatures, however much of it and whatever its names, cannot push a signed
 * policy past the cap.
 */
function byPromise(listing: StoreListing): string[] {
  const ids = [...listing.artifacts.keys()].sort();
  const signed = (id: string) => (listing.artifacts.get(id) ?? []).some((v) => listing.signed.has(`${id}@${v}`));
  return [...ids.filter(signed), ...ids.filter((id) => !signed(id))];
}

/** Loads in flight at once (start, retries, reloads): a store of junk cannot open thousands of files together. */
const MAX_CONCURRENT_LOADS = 4;

export interface PolicySetObserver {
  /** A serving version was unloaded: the trust repository no longer approves it. */
  revoked(state: PolicyState, unloaded: LoadedPolicy, error: LoadError): void;
  /** A serving version was unloaded: one of its decisions ran past the deadline. */
  stopped(state: PolicyState, unloaded: LoadedPolicy, error: LoadError): void;
  swapped(state: PolicyState, previous: LoadedPolicy | undefined): void;
  retryScheduled(state: PolicyState, delayMs: number): void;
  discoveryFailed(error: unknown): void;
  /** A discovery pass listed the store (caps reached, misnamed objects...). */
  discovered(report: DiscoveryReport): void;
  /** A version in the store that is never tried: outside the allow-list beside an admitted one, or not approved. */
  unknownVersion(ref: ArtifactRef, reason: ApxError): void;
}

export interface PolicySetOptions {
  loader: PolicyLoader;
  source: ArtifactSource;
  selectors: PolicySelector[];
  allowList: AllowList | undefined;
  reloadIntervalMs: number;
  observer: PolicySetObserver;
  /**
   * With a trust repository: the versions the environment approves, highest first (the store
   * listing does not decide what may load), and the policies that have any.
   */
  approved?: { versions(policyId: string): string[]; policies(): string[]; refusal(ref: ArtifactRef): ApxError };
  /** Backoff bounds for retrying a policy that has no version serving. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Discovery bounds (default DEFAULT_DISCOVERY_LIMITS). */
  discovery?: Partial<DiscoveryLimits>;
}

/**
 * The configured policies and what serves for each. A policy that fails to load never
 * takes the worker down: it stays not-ready and is retried with exponential backoff while
 * the others serve. Followed policies are hot-reloaded: a newer admitted version is
 * verified in full and swapped in; one that fails leaves the last good version serving.
 *
 * With no APX_POLICIES (discovery), what is read from the store is bounded: one listing per
 * pass (shared by the retries of every policy for retryMinMs), at most maxObjects names and
 * maxPolicies policies, within timeoutMs; at most MAX_CONCURRENT_LOADS loads at once.
 */
export class PolicySet {
  private readonly options: PolicySetOptions;
  private readonly states = new Map<string, PolicyState>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private reloadTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;
  private readonly limits: DiscoveryLimits;
  /** The last listing (discovery), shared by the attempts made while it is fresh. */
  private listed: { at: number; listing: Promise<StoreListing> } | undefined;
  /** Why the last listing failed, while it does. */
  private listingError: unknown;
  private lastListing: StoreListing | undefined;
  private loadsInFlight = 0;
  private readonly waitingForLoad: Array<() => void> = [];

  constructor(options: PolicySetOptions) {
    this.options = options;
    this.limits = { ...DEFAULT_DISCOVERY_LIMITS, ...options.discovery };
    for (const s of options.selectors) this.states.set(s.policyId, this.newState(s.policyId, s.version));
  }

  private newState(policyId: string, pinned: string | undefined): PolicyState {
    return { policyId, pinned, current: undefined, lastError: undefined, failures: 0, refused: false };
  }

  /** True without APX_POLICIES: every policy in the store (or approved) is served. */
  get discovering(): boolean {
    return this.options.selectors.length === 0;
  }

  /** Starts loading everything; resolves once each policy has had its first attempt. */
  async start(): Promise<void> {
    await this.discover();
    await Promise.all([...this.states.values()].map((s) => this.attempt(s)));
    this.started = true;
    if (this.options.reloadIntervalMs > 0) {
      this.reloadTimer = setInterval(() => void this.reload(), this.options.reloadIntervalMs);
      this.reloadTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  get(policyId: string): LoadedPolicy | undefined {
    return this.states.get(policyId)?.current;
  }

  list(): PolicyState[] {
    return [...this.states.values()];
  }

  ready(): boolean {
    return this.readiness().ready;
  }

  /**
   * Ready once something serves and every policy the worker is expected to serve does: with
   * APX_POLICIES, every configured policy (strict); in discovery, every policy found except
   * those whose artifacts the verifier refused (reported once each, never served). Otherwise
   * `reason` says why, in one line.
   */
  readiness(): { ready: boolean; reason?: string } {
    const states = this.list();
    const expected = this.discovering ? states.filter((s) => s.current || !s.refused) : states;
    const waiting = expected.filter((s) => !s.current);
    const serving = states.length - states.filter((s) => !s.current).length;
    if (serving > 0 && waiting.length === 0) return { ready: true };
    if (states.length === 0) return { ready: false, reason: `no policy found: ${this.emptyReason()}` };
    const shown = (list: PolicyState[]) =>
      list
        .slice(0, 3)
        .map((s) => `${s.policyId} (${s.lastError ? `${s.lastError.code}: ${s.lastError.reason}` : 'no version in the store'})`)
        .join(', ') + (list.length > 3 ? `, and ${list.length - 3} more` : '');
    if (waiting.length === 0) {
      return { ready: false, reason: `every policy found was refused: ${shown(states)}` };
    }
    return { ready: false, reason: `${waiting.length} of ${expected.length} policies not ready: ${shown(waiting)}` };
  }

  /** Why discovery found nothing to serve, with the fix. */
  private emptyReason(): string {
    const url = this.options.source.url;
    if (!this.discovering) return 'no policy configured';
    if (this.listingError !== undefined && !this.options.approved) {
      return `cannot list the store ${url}: ${(this.listingError as Error).message}`;
    }
    if (this.options.approved) {
      return 'the trust repository in force approves no artifact for this environment; approve one (apx trust approve)';
    }
    const listing = this.lastListing;
    if (listing?.absent) return `${listing.absent} (APX_STORE=${url}); publish artifacts there (apx publish) or fix APX_STORE`;
    if (listing && listing.misnamed.count > 0) {
      return (
        `the store ${url} holds ${listing.misnamed.count} .wasm file(s) but none named <policy-id>@<semver>.wasm ` +
        `(${listing.misnamed.examples.join(', ')}); publish artifacts under that name (apx compile writes it) or set APX_POLICIES`
      );
    }
    return `the store ${url} holds no artifact (<policy-id>@<semver>.wasm); publish one (apx publish) or fix APX_STORE`;
  }

  /**
   * One listing of the store, bounded in names and time; a listing younger than `maxAgeMs`
   * (or one in flight) is shared.
   */
  private storeListing(maxAgeMs: number): Promise<StoreListing> {
    const now = Date.now();
    if (this.listed && now - this.listed.at <= maxAgeMs) return this.listed.listing;
    const { maxObjects, timeoutMs } = this.limits;
    const { source } = this.options;
    const listing = new Promise<StoreListing>((resolve, reject) => {
      // A store that ignores the signal still cannot hold discovery past the deadline.
      const timer = setTimeout(
        () =>
          reject(
            new WorkerError(
              WorkerErrorCode.STORE_UNAVAILABLE,
              `store unavailable: ${source.url}: listing took longer than ${timeoutMs / 1000} s`,
              {
                hint: 'check that the store is reachable; the worker keeps serving what it has and lists again at the next reload',
              },
            ),
          ),
        timeoutMs,
      );
      timer.unref();
      source
        .listing({ maxObjects, signal: AbortSignal.timeout(timeoutMs) })
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
    const entry = { at: now, listing };
    this.listed = entry;
    listing.then(
      (l) => {
        this.lastListing = l;
        this.listingError = undefined;
      },
      (err: unknown) => {
        this.listingError = err;
        if (this.listed === entry) this.listed = undefined; // the next attempt lists again
      },
    );
    return listing;
  }

  /**
   * With no APX_POLICIES, every policy in the store is served (with a trust repository: every
   * policy it approves), up to maxPolicies. Each pass lists the store once and reports what it
   * found: caps reached, misnamed artifacts, versions never tried.
   */
  private async discover(): Promise<void> {
    if (!this.discovering) return this.surveySelected();
    const { approved } = this.options;
    let listing: StoreListing | undefined;
    try {
      listing = await this.storeListing(0);
    } catch (err) {
      this.options.observer.discoveryFailed(err);
      if (!approved) return;
    }
    const ids = approved ? approved.policies() : listing ? byPromise(listing) : [];
    let overCap = 0;
    for (const id of ids) {
      if (this.states.has(id)) continue;
      if (this.states.size >= this.limits.maxPolicies) overCap++;
      else this.states.set(id, this.newState(id, undefined));
    }
    if (!listing) return;
    this.options.observer.discovered({
      storeUrl: this.options.source.url,
      listing,
      policies: ids.length,
      overCap,
      limits: this.limits,
    });
    for (const state of this.states.values()) this.survey(state.policyId, listing.artifacts.get(state.policyId) ?? []);
  }

  /** With APX_POLICIES: the versions in the store of each followed policy that are never tried. */
  private async surveySelected(): Promise<void> {
    for (const state of this.states.values()) {
      if (state.pinned) continue;
      try {
        this.survey(state.policyId, await this.options.source.versions(state.policyId));
      } catch {
        // the store is unreachable: the loads say so
      }
    }
  }

  /**
   * Reports (once each: the observer remembers) the versions of a policy in the store that
   * are never tried: those the trust repository does not approve, and those outside the
   * allow-list while an admitted version exists (when none is admitted, they are tried and
   * their refusal says why).
   */
  private survey(policyId: string, inStore: string[]): void {
    const { allowList, approved, observer } = this.options;
    const valid = inStore.filter((v) => semver.valid(v) === v);
    const approvedVersions = approved ? new Set(approved.versions(policyId)) : undefined;
    const eligible = approvedVersions ? valid.filter((v) => approvedVersions.has(v)) : valid;
    const admitted = allowList ? eligible.filter((v) => allowList.admits(policyId, v)) : eligible;
    for (const version of valid) {
      const ref = { policyId, version };
      if (approved && !approvedVersions?.has(version)) observer.unknownVersion(ref, approved.refusal(ref));
      else if (allowList && admitted.length > 0 && !allowList.admits(policyId, version)) {
        observer.unknownVersion(ref, allowList.rejection(policyId, version));
      }
    }
  }

  /** Versions of a policy in the store: from the shared listing in discovery, else its own listing. */
  private async storeVersions(policyId: string): Promise<string[]> {
    if (!this.discovering) return this.options.source.versions(policyId);
    return (await this.storeListing(this.options.retryMinMs ?? 1000)).artifacts.get(policyId) ?? [];
  }

  /** Runs a load when fewer than MAX_CONCURRENT_LOADS are in flight. */
  private async limited<T>(load: () => Promise<T>): Promise<T> {
    while (this.loadsInFlight >= MAX_CONCURRENT_LOADS) await new Promise<void>((r) => this.waitingForLoad.push(r));
    this.loadsInFlight++;
    try {
      return await load();
    } finally {
      this.loadsInFlight--;
      this.waitingForLoad.shift()?.();
    }
  }

  /** Candidate references, best first: the pinned one, or admitted versions high to low. */
  private async candidates(state: PolicyState): Promise<ArtifactRef[]> {
    if (state.pinned) return [{ policyId: state.policyId, version: state.pinned }];
    const versions = this.options.approved
      ? this.options.approved.versions(state.policyId)
      : (await this.storeVersions(state.policyId)).filter((v) => semver.valid(v) === v);
    const { allowList } = this.options;
    // Versions outside the allow-list are still tried last, so their rejection is reported
    // (and counted as unknown_versions) instead of the policy silently serving nothing.
    const admitted = allowList ? versions.filter((v) => allowList.admits(state.policyId, v)) : versions;
    const ordered = (admitted.length > 0 ? admitted : versions).sort(semver.rcompare);
    return ordered.map((version) => ({ policyId: state.policyId, version }));
  }

  /**
   * Tries every policy with nothing serving now, backoff reset: the trust in force changed
   * (a new approval, fresh metadata again), so waiting out a backoff would only delay it.
   */
  async retryWaiting(): Promise<void> {
    if (!this.started || this.stopped) return; // start() makes the first attempts itself
    const waiting = [...this.states.values()].filter((s) => !s.current);
    for (const state of waiting) state.failures = 0;
    await Promise.all(waiting.map((s) => this.attempt(s)));
  }

  /** First load (and retries) of a policy with nothing serving. */
  private async attempt(state: PolicyState): Promise<void> {
    if (this.stopped) return;
    let refs: ArtifactRef[];
    try {
      refs = await this.candidates(state);
    } catch (err) {
      state.lastError = err instanceof LoadError ? err : new LoadError({ policyId: state.policyId, version: '0.0.0' }, err);
      state.refused = false;
      return this.scheduleRetry(state);
    }
    if (refs.length === 0) {
      state.lastError = undefined;
      state.refused = true; // nothing left in the store (or approved) for it
      return this.scheduleRetry(state);
    }
    let refused = true;
    for (const ref of refs) {
      try {
        this.swap(state, await this.limited(() => this.options.loader.load(ref)));
        return;
      } catch (err) {
        state.lastError = err instanceof LoadError ? err : new LoadError(ref, err);
        if (!isVerifierRefusal(state.lastError.code)) refused = false;
      }
    }
    state.refused = refused;
    this.scheduleRetry(state);
  }

  private scheduleRetry(state: PolicyState): void {
    if (this.stopped) return;
    state.failures++;
    const min = this.options.retryMinMs ?? 1000;
    const max = this.options.retryMaxMs ?? 60_000;
    const base = Math.min(max, min * 2 ** Math.min(state.failures - 1, 16));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: workers do not retry in lockstep
    this.options.observer.retryScheduled(state, delay);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!state.current && this.states.get(state.policyId) === state) void this.attempt(state);
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  private swap(state: PolicyState, loaded: LoadedPolicy): void {
    const previous = state.current;
    state.current = loaded;
    state.lastError = undefined;
    state.failures = 0;
    state.refused = false;
    if (previous?.artifact.digest !== loaded.artifact.digest) this.options.observer.swapped(state, previous);
  }

  /** One hot-reload pass: newer admitted versions of followed policies. */
  async reload(): Promise<void> {
    if (this.stopped) return;
    const before = new Set(this.states.keys());
    await this.discover();
    await Promise.all([...this.states].filter(([id]) => !before.has(id)).map(([, state]) => this.attempt(state)));
    for (const state of this.states.values()) {
      if (state.pinned || !state.current) continue;
      let refs: ArtifactRef[];
      try {
        refs = await this.candidates(state);
      } catch {
        continue; // store unreachable: keep serving; the next pass tries again
      }
      const current = state.current.ref.version;
      const newer = refs.find((r) => semver.gt(r.version, current));
      if (!newer) continue;
      try {
        this.swap(state, await this.limited(() => this.options.loader.load(newer, { serving: state.current?.refText })));
      } catch (err) {
        // The loader reported the refusal (with what keeps serving); the last good version serves on.
        state.lastError = err instanceof LoadError ? err : new LoadError(newer, err);
      }
    }
  }

  /**
   * Unloads every serving version that `withdrawn` says lost its approval (revoked, other
   * bytes approved, signer removed). The policy becomes not ready and is retried: the loader
   * refuses the withdrawn version, so only another approved version can take its place.
   */
  applyWithdrawals(withdrawn: (loaded: LoadedPolicy) => ApxError | undefined): void {
    for (const state of this.states.values()) {
      const current = state.current;
      if (!current) continue;
      const reason = withdrawn(current);
      if (!reason) continue;
      state.current = undefined;
      state.lastError = new LoadError(current.ref, reason, current.artifact.digest);
      this.options.loader.forget(current.artifact.digest);
      this.options.observer.revoked(state, current, state.lastError);
      this.scheduleRetry(state);
    }
  }

  /**
   * Unloads the artifact whose decision was stopped at its deadline, wherever it serves, and
   * keeps the loader from instantiating it again: the policy is not ready and is retried, so
   * only another version (other bytes) can take its place.
   */
  stopDigest(digest: string, reason: WorkerError): void {
    this.options.loader.stop(digest, reason);
    for (const state of this.states.values()) {
      const current = state.current;
      if (current?.artifact.digest !== digest) continue;
      state.current = undefined;
      state.lastError = new LoadError(current.ref, reason, digest);
      this.options.observer.stopped(state, current, state.lastError);
      this.scheduleRetry(state);
    }
  }

  /** Stops serving everything (trust metadata past its grace); returns how many were unloaded. */
  unloadAll(reason: string): number {
    let unloaded = 0;
    for (const state of this.states.values()) {
      if (!state.current) continue;
      state.lastError = new LoadError(
        state.current.ref,
        new WorkerError(WorkerErrorCode.TRUST_STALE, reason, {
          hint: 'renew the trust repository (apx trust publish with the snapshot and timestamp keys)',
        }),
        state.current.artifact.digest,
      );
      state.current = undefined;
      unloaded++;
      this.scheduleRetry(state);
    }
    return unloaded;
  }
}
