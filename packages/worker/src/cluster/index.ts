// The multi-process worker (APX_WORKERS above 1): one verifying primary, N serving children
// sharing the ports (docs/architecture.md, "The multi-process worker").
import cluster from 'node:cluster';

export { runClusterChild } from './child.js';
export { type ClusterPrimary, startClusterPrimary } from './primary.js';

/** True in a serving child that a primary forked (it must never verify or listen on its own). */
export function isClusterChild(): boolean {
  return cluster.isWorker;
}
