import type { HeaderMutationTable, JwtTable, VerifiedArtifact } from '@apx/core';

/** An instantiated policy: decides one request at a time, synchronously. */
export interface PolicyRuntime {
  decide(request: unknown): PolicyDecision;
  /** Where and how to verify bearer tokens, when the policy authenticates with JWTs. */
  readonly jwt?: JwtTable | null;
  /** False once a decision was stopped at its deadline (every later decision is that deny). */
  readonly healthy?: boolean;
}

/** The decision record the worker serves; the host's full decision rides along as `json`. */
export interface PolicyDecision {
  allow: boolean;
  status: number;
  reason: string;
  /** Rate-limit buckets this request charges (the worker keeps the counters). */
  rateLimits: Array<{ name: string; key: string; rps: number; burst: number }>;
  /** The runtime's full decision as a JSON object text (it includes allow, status and reason). */
  json: string;
  /** The rule that decided, or null (default effect, or a runtime that does not say). */
  rule?: string | null;
  /** Header mutations of an allowed request (shared, read-only); absent or empty otherwise. */
  headers?: HeaderMutationTable;
}

/** Turns a verified artifact into a runtime; only verified artifacts can be instantiated. */
export type RuntimeFactory = (artifact: VerifiedArtifact) => PolicyRuntime;
