// apx/v1 policies: parse, validate, compile to WebAssembly, and evaluate for reference.
export { canonicalJson, sourceDigest } from './canonical.js';
export { COMPILER_VERSION, type CompiledPolicy, compilePolicy, parsePolicy } from './compiler.js';
export { formatProblem, PolicyCheckError, PolicyError, PolicyErrorCode, type Problem } from './error.js';
export type { ApiKey, Cidr, Effect, Policy, RateLimit, Route, Rule } from './model.js';
export { ReferenceEvaluator } from './reference/evaluator.js';
export { API_VERSION, KIND } from './schema.js';
