import type { LoadedPolicy } from './loader.js';

/** One policy as the serving side sees it: what serves now, and why nothing does. */
export interface ServingState {
  readonly policyId: string;
  /** What serves now; undefined while nothing does. */
  readonly current: LoadedPolicy | undefined;
  /** Discovery mode: every candidate was refused by the verifier (never serves, does not hold readiness). */
  readonly refused: boolean;
  readonly lastError: { readonly message: string } | undefined;
}

/**
 * What the decision pipeline and the HTTP endpoints read: the single-process worker's
 * PolicySet, or in a serving child of the multi-process worker (APX_WORKERS above 1), the set
 * its primary verified and handed over (cluster/child-policies.ts).
 */
export interface ServingPolicies {
  /** True without APX_POLICIES: every policy in the store (or approved) is served. */
  readonly discovering: boolean;
  get(policyId: string): LoadedPolicy | undefined;
  list(): readonly ServingState[];
  readiness(): { ready: boolean; reason?: string };
}
