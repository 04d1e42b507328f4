// apx/v1 policies: parse, validate, compile to WebAssembly. The reference evaluator (which
// loads the CEL interpreter) is a separate entry point: @apx/policy/reference.
export { canonicalJson, sourceDigest } from './canonical.js';
export { COMPILER_VERSION, type CompiledPolicy, compilePolicy, parsePolicy } from './compiler.js';
export { formatProblem, PolicyCheckError, PolicyError, PolicyErrorCode, type Problem } from './error.js';
export { formatPolicySource } from './format.js';
export {
  POLICY_JSON_SCHEMA,
  policyJsonSchemaText,
  SCHEMA_ID,
  SCHEMA_PATH,
  TEST_JSON_SCHEMA,
  TEST_SCHEMA_PATH,
  testJsonSchemaText,
} from './json-schema.js';
export type { ApiKey, Cidr, Effect, Policy, RateLimit, Route, Rule } from './model.js';
export { REQUEST_FIELDS, type RequestProblem, requestFromValue } from './request.js';
export { API_VERSION, KIND } from './schema.js';
export {
  compareDecision,
  type Mismatch,
  parseTestSuite,
  TEST_SUFFIX,
  type TestCase,
  TestFileError,
  type TestSuite,
} from './test-suite.js';
export { compilerToolchain, type ToolchainPackage } from './toolchain.js';
