import type { ApxError, ArtifactRef } from '@apx/core';
import semver from 'semver';
import type { AllowList } from './allow-list.js';
import type { PolicySelector } from './config.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { LoadError } from './load-error.js';
import type { LoadedPolicy, PolicyLoader } from './loader.js';
import type { ArtifactSource } from './source.js';

export interface PolicyState {
  policyId: string;
  /** Pinned version, or undefined to follow the highest admitted version. */
  pinned: string | undefined;
  /** What serves now; swapped in one assignment, so requests see old or new, never half. */
  current: LoadedPolicy | undefined;
  lastError: LoadError | undefined;
  failures: number;
}

export interface PolicySetObserver {
  /** A serving version was unloaded: the trust repository no longer approves it. */
  revoked(state: PolicyState, unloaded: LoadedPolicy, error: LoadError): void;
  /** A serving version was unloaded: one of its decisions ran past the deadline. */
  stopped(state: PolicyState, unloaded: LoadedPolicy, error: LoadError): void;
  swapped(state: PolicyState, previous: LoadedPolicy | undefined): void;
  reloadRejected(state: PolicyState, error: LoadError): void;
  retryScheduled(state: PolicyState, delayMs: number): void;
  discoveryFailed(error: unknown): void;
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
  approved?: { versions(policyId: string): string[]; policies(): string[] };
  /** Backoff bounds for retrying a policy that has no version serving. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/**
 * The configured policies and what serves for each. A policy that fails to load never
 * takes the worker down: it stays not-ready and is retried with exponential backoff while
 * the others serve. Followed policies are hot-reloaded: a newer admitted version is
 * verified in full and swapped in; one that fails leaves the last good version serving.
 */
export class PolicySet {
  private readonly options: PolicySetOptions;
  private readonly states = new Map<string, PolicyState>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private reloadTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private discovered = false;
  private started = false;

  constructor(options: PolicySetOptions) {
    this.options = options;
    for (const s of options.selectors) this.states.set(s.policyId, this.newState(s.policyId, s.version));
  }

  private newState(policyId: string, pinned: string | undefined): PolicyState {
    return { policyId, pinned, current: undefined, lastError: undefined, failures: 0 };
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

  /** Ready once every configured policy has a verified version serving. */
  ready(): boolean {
    const states = this.list();
    return states.length > 0 && states.every((s) => s.current !== undefined);
  }

  /** With no APX_POLICIES, every policy in the store is served. */
  private async discover(): Promise<void> {
    if (this.options.selectors.length > 0) return;
    try {
      const ids = this.options.approved ? this.options.approved.policies() : await this.options.source.policies();
      for (const id of ids) {
        if (!this.states.has(id)) this.states.set(id, this.newState(id, undefined));
      }
      this.discovered = true;
    } catch (err) {
      this.options.observer.discoveryFailed(err);
    }
  }

  /** Candidate references, best first: the pinned one, or admitted versions high to low. */
  private async candidates(state: PolicyState): Promise<ArtifactRef[]> {
    if (state.pinned) return [{ policyId: state.policyId, version: state.pinned }];
    const versions = this.options.approved
      ? this.options.approved.versions(state.policyId)
      : (await this.options.source.versions(state.policyId)).filter((v) => semver.valid(v) === v);
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
      return this.scheduleRetry(state);
    }
    if (refs.length === 0) {
      state.lastError = undefined;
      return this.scheduleRetry(state);
    }
    for (const ref of refs) {
      try {
        this.swap(state, await this.options.loader.load(ref));
        return;
      } catch (err) {
        state.lastError = err instanceof LoadError ? err : new LoadError(ref, err);
      }
    }
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
      if (!state.current) void this.attempt(state);
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  private swap(state: PolicyState, loaded: LoadedPolicy): void {
    const previous = state.current;
    state.current = loaded;
    state.lastError = undefined;
    state.failures = 0;
    if (previous?.artifact.digest !== loaded.artifact.digest) this.options.observer.swapped(state, previous);
  }

  /** One hot-reload pass: newer admitted versions of followed policies. */
  async reload(): Promise<void> {
    if (this.stopped) return;
    if (this.options.selectors.length === 0 || !this.discovered) {
      const before = new Set(this.states.keys());
      await this.discover();
      for (const [id, state] of this.states) if (!before.has(id)) await this.attempt(state);
    }
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
        this.swap(state, await this.options.loader.load(newer));
      } catch (err) {
        const error = err instanceof LoadError ? err : new LoadError(newer, err);
        state.lastError = error;
        this.options.observer.reloadRejected(state, error);
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
