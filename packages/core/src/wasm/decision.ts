import type { HeaderMutationTable } from './abi.js';

export type IdentityKindName = 'none' | 'apiKey' | 'jwt';

export interface DecisionIdentity {
  kind: IdentityKindName;
  /** API key id or JWT subject; empty when anonymous. */
  id: string;
  tenant: string;
  plan: string;
}

/** One rate-limit bucket the host must charge for an allowed request (it keeps the counters). */
export interface RateLimitCharge {
  name: string;
  key: string;
  /** The value of `key` for this request: the bucket is (name, value). */
  value: string;
  limit: number;
  windowSeconds: number;
  burst: number;
}

/**
 * A decision. The host may hand out the same frozen object for every request with the same
 * static outcome (API-key and anonymous callers): treat it as read-only.
 */
export interface PolicyDecision {
  effect: 'allow' | 'deny';
  status: number;
  reason: string;
  route: string | null;
  rule: string | null;
  identity: DecisionIdentity;
  /** Mutations to apply; empty unless allowed. Shared between decisions (frozen). */
  headers: HeaderMutationTable;
  /** Buckets to charge; empty unless allowed. Shared between decisions: do not mutate. */
  rateLimits: readonly RateLimitCharge[];
}

export const NO_HEADER_MUTATIONS: HeaderMutationTable = Object.freeze({
  request: Object.freeze({ set: Object.freeze({}), remove: Object.freeze([]) }),
  response: Object.freeze({ set: Object.freeze({}), remove: Object.freeze([]) }),
});

export const ANONYMOUS: DecisionIdentity = Object.freeze({ kind: 'none', id: '', tenant: '', plan: '' });
