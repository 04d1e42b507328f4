// A worker's view of the TUF trust repository (APX_TRUST_REPOSITORY): refreshed on a timer,
// never going backwards (the client keeps its state in APX_STATE_DIR), and judged for
// freshness against the timestamp's expiry with a bounded grace.

import {
  type ArtifactRef,
  artifactFileName,
  type CertificateIdentity,
  identityMismatch,
  SignatureVerifier,
  type TufTrust,
} from '@apx/core';
import { approvedRefs, type TrustClient, TrustError, TrustErrorCode, type TrustView, tufTrustFor } from '@apx/trust';
import semver from 'semver';

/** fresh: loads proceed; expired: serve what is loaded, refuse new loads; past-grace: serve nothing. */
export type TrustFreshness = 'fresh' | 'expired' | 'past-grace';

export interface RepositoryWatcherOptions {
  client: TrustClient;
  /** How long loaded policies keep serving after the metadata expired. */
  graceMs: number;
  now?: () => Date;
  /** `fromState`: the store could not be used; this is what the worker verified before. */
  onApplied(view: TrustView, previous: TrustView | undefined, fromState: boolean): void;
  onRejected(error: TrustError, kept: TrustView | undefined): void;
  /**
   * A refused refresh is tried once more after this pause before it is reported (default
   * 1000 ms). A publish is several writes (a new root is visible before the timestamp that
   * goes with it is swapped in), so a refresh that lands between them can see a root whose
   * rotated keys do not sign the roles of the moment before. Whatever is refused is never
   * adopted; an attack is still refused, and reported, a pause later.
   */
  retryRefusedAfterMs?: number;
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

  get storeUrl(): string {
    return this.#o.client.storeUrl;
  }

  /** One refresh; a failure keeps the last good view and is reported, never thrown. */
  async refresh(): Promise<void> {
    try {
      let view: TrustView;
      try {
        view = await this.#o.client.refresh();
      } catch (err) {
        if (!(err instanceof TrustError) || err.code === TrustErrorCode.STORE_FAILED) throw err;
        await new Promise((resolve) => setTimeout(resolve, this.#o.retryRefusedAfterMs ?? 1000));
        view = await this.#o.client.refresh();
      }
      this.#adopt(view, false);
      this.#lastError = undefined;
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
      if (!this.#view) {
        const kept = await this.#o.client.loadTrusted().catch(() => undefined);
        if (kept) this.#adopt(kept, true);
      }
    }
  }

  /** A verified view in force; its signers' verifiers are built once per key, not per load. */
  #adopt(view: TrustView, fromState: boolean): void {
    const previous = this.#view;
    this.#view = view;
    const next = new Map<string, SignatureVerifier>();
    for (const s of view.signers) next.set(s.keyId, this.#verifiers.get(s.keyId) ?? new SignatureVerifier(s.publicKey));
    this.#verifiers = next;
    this.#o.onApplied(view, previous, fromState);
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

  /**
   * Why a serving artifact lost the environment's approval; undefined while it still has it.
   * Signed by a key: that key must still be a signer. Signed keylessly (`certificate`, what its
   * verified Fulcio certificate says; its key is ephemeral and never a signer): an identity the
   * environment trusts must still accept that certificate.
   */
  withdrawal(
    ref: ArtifactRef,
    digest: string,
    keyId: string | null,
    certificate: CertificateIdentity | null = null,
  ): string | undefined {
    const view = this.#view;
    if (!view) return undefined; // no view yet: nothing loaded through it either
    const path = artifactFileName(ref);
    const target = view.targets.get(path);
    if (!target) {
      const record = [...view.revoked].reverse().find((r) => r.path === path);
      const why = record ? ` (${record.reason}, ${record.revokedAt})` : '';
      return `revoked: ${path} is no longer approved for ${view.environment}${why}`;
    }
    if (`sha256:${target.sha256}` !== digest) {
      return `revoked: ${view.environment} now approves other bytes for ${path} (sha256:${target.sha256})`;
    }
    if (certificate !== null) {
      if (view.identities.some((s) => identityMismatch(s.identity, certificate) === undefined)) return undefined;
      return `revoked: identity ${certificate.subject ?? '(no subject)'} from ${certificate.issuer ?? '(no issuer)'} no longer signs for ${view.environment}`;
    }
    if (keyId !== null && !view.signers.some((s) => s.keyId === keyId)) {
      return `revoked: key ${keyId} no longer signs for ${view.environment}`;
    }
    return undefined;
  }
}
