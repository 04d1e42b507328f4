// The reference evaluator: apx/v1 semantics with the CEL interpreter, for tests and benchmarks.
export { ReferenceEvaluator } from './evaluator.js';
