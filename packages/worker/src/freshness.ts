import type { PolicyIndex } from '@apx/core';
import type { TrustDocumentWatcher } from './trust-documents.js';

export type FreshnessState = 'fresh' | 'expired' | 'past-grace';

/**
 * Freshness from the signed policy index (APX_INDEX): while the index held is unexpired the
 * worker takes new versions (the index names the current one of each policy); past expiry it
 * refuses new loads but keeps serving what it has for a bounded grace; past the grace it
 * stops serving. No index yet counts as expired: fail closed.
 */
export class Freshness {
  readonly watcher: TrustDocumentWatcher<PolicyIndex>;
  private readonly graceMs: number;

  constructor(watcher: TrustDocumentWatcher<PolicyIndex>, graceMs: number) {
    this.watcher = watcher;
    this.graceMs = graceMs;
  }

  state(now: Date): FreshnessState {
    const index = this.watcher.current;
    if (index && !index.expired(now)) return 'fresh';
    if (index && now.getTime() <= index.expires.getTime() + this.graceMs) return 'expired';
    return index ? 'past-grace' : 'expired';
  }

  describe(): string {
    const index = this.watcher.current;
    return index ? `policy index expired at ${index.expires.toISOString()}` : `no valid policy index at ${this.watcher.where}`;
  }

  graceEnd(): string {
    const index = this.watcher.current;
    return index ? new Date(index.expires.getTime() + this.graceMs).toISOString() : 'an index is published';
  }

  /** For the loader: undefined when new loads may proceed, else why not. */
  check(now: Date): string | undefined {
    return this.state(now) === 'fresh' ? undefined : `${this.describe()}: refusing new loads`;
  }

  /** The version the index names for a policy (followed policies load exactly that). */
  target(policyId: string): string | undefined {
    return this.watcher.current?.policies[policyId];
  }
}
