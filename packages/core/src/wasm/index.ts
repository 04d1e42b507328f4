// The WebAssembly policy host: the ABI (shared with the compiler) and the runtime that
// executes verified policy modules.
export * from './abi.js';
export { checkAbi, readPolicyMeta } from './abi-check.js';
export type { DecisionIdentity, IdentityKindName, PolicyDecision, RateLimitCharge } from './decision.js';
export { decisionJson } from './decision-json.js';
export { DEFAULT_DECISION_DEADLINE_MS, type PolicyFault, PolicyHost, type PolicyHostOptions } from './host.js';
export { type ParsedIp, parseIp } from './ip.js';
export { FUEL_CHUNK, meterModule } from './meter.js';
export {
  clampBodySize,
  type JwtClaims,
  type JwtInput,
  type NormalizedClaims,
  normalizeClaims,
  type PolicyRequest,
} from './request.js';
