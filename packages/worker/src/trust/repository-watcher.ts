// A worker's view of the TUF trust repository (APX_TRUST_REPOSITORY): refreshed on a timer,
// never going backwards (the client keeps its state in APX_STATE_DIR), and judged for
// freshness against the timestamp's expiry with a bounded grace.

import { type ArtifactRef, artifactFileName, SignatureVerifier, type TufTrust } from '@apx/core';
import {
  approvedRefs,
  type RevocationRecord,
  type TrustClient,
  TrustError,
  TrustErrorCode,
  type TrustView,
  tufTrustFor,
} from '@apx/trust';
import semver from 'semver';

/** fresh: loads proceed; expired: serve what is loaded, refuse new loads; past-grace: serve nothing. */
export type TrustFreshness = 'fresh' | 'expired' | 'past-grace';

/** Why a serving artifact no longer has the environment's approval. */
export interface Withdrawal {
  /** REVOKED (the target was removed), TARGET_MISMATCH (other bytes approved) or SIGNER_REMOVED. */
  code: 'REVOKED' | 'TARGET_MISMATCH' | 'SIGNER_REMOVED';
  message: string;
  record: RevocationRecord | undefined;
}

export interface RepositoryWatcherOptions {
  client: TrustClient;
  /** How long loaded policies keep serving after the metadata expired. */
  graceMs: number;
  now?: () => Date;
  /** `fromState`: the store could not be used; this is what the worker verified before. */
  onApplied(view: TrustView, previous: TrustView | undefined, fromState?: boolean): void;
  onRejected(error: TrustError, kept: TrustView | undefined): void;
}

export class RepositoryWatcher {
  readonly #o: RepositoryWatcherOptions;
  #view: TrustView | undefined;
  #verifiers = new Map<string, SignatureVerifier>();
  #lastError: TrustError | undefined;

  constructor(options: RepositoryWatcherOptions) {
    this.#o = options;
  }

  get view(): TrustView | undefined {
    return this.#view;
  }

  get lastError(): TrustError | undefined {
    return this.#lastError;
  }

  get storeUrl(): string {
    return this.#o.client.storeUrl;
  }

  /** One refresh; a failure keeps the last good view and is reported, never thrown. */
  async refresh(): Promise<TrustView | undefined> {
    try {
      const view = await this.#o.client.refresh();
      const previous = this.#view;
      this.#view = view;
      this.#lastError = undefined;
      // Verifiers are built once per signer key, not per load.
      const next = new Map<string, SignatureVerifier>();
      for (const s of view.signers) next.set(s.keyId, this.#verifiers.get(s.keyId) ?? new SignatureVerifier(s.publicKey));
      this.#verifiers = next;
      this.#o.onApplied(view, previous);
      return view;
    } catch (err) {
      const error =
        err instanceof TrustError
          ? err
          : new TrustError(TrustErrorCode.STORE_FAILED, `trust repository refresh failed: ${(err as Error).message}`, {
              cause: err,
            });
      this.#lastError = error;
      this.#o.onRejected(error, this.#view);
      // A restart while the store is unreachable or refused: serve what this worker verified
      // before (its state directory), until that expires, rather than nothing.
      if (!this.#view) await this.#fromState();
      return undefined;
    }
  }

  async #fromState(): Promise<void> {
    try {
      const view = await this.#o.client.loadTrusted();
      this.#view = view;
      for (const sgn of view.signers) this.#verifiers.set(sgn.keyId, new SignatureVerifier(sgn.publicKey));
      this.#o.onApplied(view, undefined, true);
    } catch {
      // Nothing verified before, or it expired: nothing is trusted; the refusal is reported.
    }
  }

  freshness(now = (this.#o.now ?? (() => new Date()))()): TrustFreshness {
    const view = this.#view;
    if (!view) return 'past-grace';
    if (now.getTime() < view.expires.getTime()) return 'fresh';
    return now.getTime() < view.expires.getTime() + this.#o.graceMs ? 'expired' : 'past-grace';
  }

  /** Why new loads are refused now, or undefined when they may proceed. */
  refusal(now?: Date): string | undefined {
    const view = this.#view;
    if (!view) {
      const why = this.#lastError ? `: ${this.#lastError.message}` : '';
      return `no verified trust repository at ${this.storeUrl} yet${why}`;
    }
    return this.freshness(now) === 'fresh' ? undefined : `trust metadata expired at ${view.expires.toISOString()}`;
  }

  graceEnd(): Date | undefined {
    return this.#view && new Date(this.#view.expires.getTime() + this.#o.graceMs);
  }

  /** The environment's verdict on one reference, as the core verifier consumes it. */
  trustFor(ref: ArtifactRef): TufTrust {
    return tufTrustFor(this.#view, ref, (s) => this.#verifiers.get(s.keyId) ?? new SignatureVerifier(s.publicKey));
  }

  /** Approved versions of a policy, highest first. */
  approvedVersions(policyId: string): string[] {
    const versions = approvedRefs(this.#view)
      .filter((r) => r.policyId === policyId && semver.valid(r.version) === r.version)
      .map((r) => r.version);
    return versions.sort(semver.rcompare);
  }

  /** Policies with at least one approved version (what a worker serves when APX_POLICIES is unset). */
  policies(): string[] {
    return [...new Set(approvedRefs(this.#view).map((r) => r.policyId))].sort();
  }

  /** Undefined while the serving artifact is still approved with the key that signed it. */
  withdrawal(ref: ArtifactRef, digest: string, keyId: string | null): Withdrawal | undefined {
    const view = this.#view;
    if (!view) return undefined; // no view yet: nothing loaded through it either
    const path = artifactFileName(ref);
    const target = view.targets.get(path);
    const record = [...view.revoked].reverse().find((r) => r.path === path);
    if (!target) {
      const why = record ? ` (${record.reason}, ${record.revokedAt})` : '';
      return { code: 'REVOKED', message: `revoked: ${path} is no longer approved for ${view.environment}${why}`, record };
    }
    if (`sha256:${target.sha256}` !== digest) {
      return {
        code: 'TARGET_MISMATCH',
        message: `revoked: ${view.environment} now approves other bytes for ${path} (sha256:${target.sha256})`,
        record,
      };
    }
    if (keyId !== null && !view.signers.some((s) => s.keyId === keyId)) {
      return {
        code: 'SIGNER_REMOVED',
        message: `revoked: key ${keyId} no longer signs for ${view.environment}`,
        record: undefined,
      };
    }
    return undefined;
  }
}
