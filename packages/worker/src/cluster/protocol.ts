// The messages between the multi-process worker's primary (the only verifier and state owner)
// and its serving children, over the private IPC channel node:cluster opens between them
// (serialization 'advanced': bytes and dates cross as they are). Nothing else can write to
// that channel: it is a socket pair the primary created for the child it forked.
import type { HandedArtifact } from '@apx/core/handoff';

/** One policy of a handed set: what serves (verified by the primary) or why nothing does. */
export interface HandedPolicy {
  policyId: string;
  /** The serving version; `bytes` is left out when the child already holds this digest. */
  current: { refText: string; handed: Omit<HandedArtifact, 'bytes'> & { bytes?: Uint8Array } } | undefined;
  refused: boolean;
  lastError: string | undefined;
}

/** Everything a serving child serves and says, as of one generation of the primary's policy set. */
export interface HandedSet {
  generation: number;
  discovering: boolean;
  readiness: { ready: boolean; reason?: string };
  policies: HandedPolicy[];
}

/** A metric family as prom-client's getMetricsAsJSON gives it (what AggregatorRegistry sums). */
export type MetricFamilies = unknown[];

export type PrimaryMessage =
  /** Instantiate this set beside the one serving; answer `prepared` (or `failed`). */
  | { apx: 'prepare'; set: HandedSet }
  /** Hold every new request until `commit`; answer `fenced` once nothing is in flight. */
  | { apx: 'fence'; generation: number }
  /** Serve the prepared set from now on, then answer the held requests with it. */
  | { apx: 'commit'; generation: number }
  /** The same serving digests, new statuses (readiness, errors): applied at once. */
  | { apx: 'update'; set: HandedSet }
  | { apx: 'collect-metrics'; id: number }
  | { apx: 'metrics-text'; id: number; text: string; contentType: string }
  /** SIGTERM on the primary: drain (APX_DRAIN_SECONDS), close, exit 0. */
  | { apx: 'drain' };

export type ChildMessage =
  | { apx: 'hello' }
  | { apx: 'prepared'; generation: number }
  | { apx: 'fenced'; generation: number }
  | { apx: 'committed'; generation: number }
  | { apx: 'failed'; generation: number; error: string }
  | { apx: 'listening'; url: string }
  | { apx: 'scrape'; id: number }
  | { apx: 'metrics'; id: number; families: MetricFamilies }
  /** A decision ran past the deadline: the primary unloads the digest everywhere. */
  | { apx: 'deadline'; digest: string; policy: string };

/** True for a message of this protocol (the channel also carries node:cluster's own). */
export function isApxMessage(m: unknown): m is { apx: string } {
  return typeof m === 'object' && m !== null && typeof (m as { apx?: unknown }).apx === 'string';
}
