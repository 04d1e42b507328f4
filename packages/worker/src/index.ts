// The APX worker: verify, cache, execute, serve.
export { AllowList } from './allow-list.js';
export { DiskCache, MemoryCache } from './cache.js';
export { type Environment, type PolicySelector, resolveConfig, SETTINGS, type Setting, type WorkerConfig } from './config.js';
export { WorkerError, WorkerErrorCode } from './error.js';
export { FLOORS_FILE, RollbackFloors } from './floors.js';
export { keyProviderFromRef, type TrustedKeyProvider } from './keys.js';
export { KmsKeyProvider } from './kms-key.js';
export { LoadError, type LoadErrorCode } from './load-error.js';
export { type LoadedPolicy, type LoadObserver, PolicyLoader } from './loader.js';
export { createLogger } from './observability/logger.js';
export { WorkerMetrics } from './observability/metrics.js';
export { policyHostRuntime, RequestShapeError, toPolicyRequest } from './policy-runtime.js';
export { PolicySet } from './policy-set.js';
export type { RefreshingKeyOptions, TrustedKeyInfo } from './refreshing-key.js';
export type { PolicyDecision, PolicyRuntime, RuntimeFactory } from './runtime.js';
export {
  SECRET_VERSION_REF,
  type SecretManagerClientOptions,
  type SecretManagerKeyOptions,
  SecretManagerKeyProvider,
} from './secret-manager.js';
export type { ArtifactMaterial, ArtifactSource } from './source.js';
export { openArtifactSource } from './store-source.js';
export { type RunningWorker, startWorker, type WorkerDeps } from './worker.js';
