import {
  decisionJson,
  type PolicyDecision as HostDecision,
  type JwtInput,
  type PolicyFault,
  PolicyHost,
  type PolicyRequest,
} from '@apx/core';
import type { PolicyDecision, PolicyRuntime, RuntimeFactory } from './runtime.js';

/** A bad request body: answered 400, never decided. */
export class RequestShapeError extends Error {
  override readonly name = 'RequestShapeError';
}

const UPPER = /^[A-Z]+$/;
const HAS_UPPER = /[A-Z]/;
/** Shared host decisions whose worker form is kept per runtime (the host keeps about as many). */
const CONVERTED_MAX = 1024;

const str = (v: unknown, field: string, required: boolean): string | undefined => {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string') throw new RequestShapeError(`request.${field} must be a string`);
  return v;
};

/**
 * The `request` of `POST /v1/decide` as the ABI's PolicyRequest, with the host-side
 * normalisation PolicyRequest documents: port stripped from host, query from path, header
 * names lowercased. Anything of the wrong type is refused rather than guessed.
 */
export function toPolicyRequest(input: unknown): PolicyRequest {
  if (typeof input !== 'object' || input === null) throw new RequestShapeError('request must be an object');
  const r = input as Record<string, unknown>;
  const rawHost = str(r.host, 'host', true) as string;
  const rawPath = str(r.path, 'path', true) as string;
  const method = str(r.method, 'method', true) as string;
  const ip = str(r.ip, 'ip', false);
  const headers = r.headers === undefined ? undefined : policyHeaders(r.headers);
  if (r.bodySize !== undefined && (typeof r.bodySize !== 'number' || !(r.bodySize >= 0)))
    throw new RequestShapeError('request.bodySize must be a non-negative number');
  if (r.jwt !== undefined) {
    const jwt = r.jwt as { verified?: unknown; claims?: unknown };
    if (typeof jwt !== 'object' || jwt === null || typeof jwt.verified !== 'boolean') {
      throw new RequestShapeError('request.jwt must be {"verified": false} or {"verified": true, "claims": {...}}');
    }
    if (jwt.verified && (typeof jwt.claims !== 'object' || jwt.claims === null)) {
      throw new RequestShapeError('request.jwt.claims must be an object when verified');
    }
  }
  // Cheap checks first: most requests carry no port, no query and an upper-case method.
  const host = rawHost.includes(':') ? rawHost.replace(/:\d+$/, '') : rawHost;
  const path = rawPath.includes('?') ? (rawPath.split('?')[0] as string) : rawPath;
  const upper = UPPER.test(method);
  // Already in normal form (the usual case): the parsed body itself is the request, no copy.
  // The host only reads the documented fields, and never writes.
  if (host === rawHost && path === rawPath && upper && headers === r.headers) return r as unknown as PolicyRequest;
  const out: PolicyRequest = { method: upper ? method : method.toUpperCase(), host, path };
  if (ip !== undefined) out.ip = ip;
  if (headers !== undefined) out.headers = headers;
  if (r.bodySize !== undefined) out.bodySize = r.bodySize as number;
  if (r.jwt !== undefined) out.jwt = r.jwt as JwtInput;
  return out;
}

/** Header values checked; names lower-cased, in a copy only when one is not already. */
function policyHeaders(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) throw new RequestShapeError('request.headers must be an object');
  const given = value as Record<string, unknown>;
  let lowered = true;
  for (const k in given) {
    if (!Object.hasOwn(given, k)) continue;
    if (typeof given[k] !== 'string') throw new RequestShapeError(`request.headers.${k} must be a string`);
    if (lowered && HAS_UPPER.test(k)) lowered = false;
  }
  if (lowered && Object.getPrototypeOf(given) === Object.prototype) return given as Record<string, string>;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) headers[k.toLowerCase()] = v as string;
  return headers;
}

/**
 * Instantiates verified artifacts with core's PolicyHost (ABI checked before
 * instantiation; traps and malformed decisions fail closed as deny 500; a decision past
 * `deadlineMs` is stopped and denied 503, and the runtime is unhealthy from then on).
 */
export function policyHostRuntime(onFault: (fault: PolicyFault) => void, deadlineMs?: number): RuntimeFactory {
  return (artifact) => {
    const host = PolicyHost.load(artifact, { onFault, ...(deadlineMs === undefined ? {} : { deadlineMs }) });
    const runtime: PolicyRuntime = {
      jwt: host.tables.jwt,
      get healthy() {
        return host.healthy;
      },
      decide(request) {
        const d = host.decide(toPolicyRequest(request));
        // The host hands out one frozen decision per static outcome (API-key and anonymous
        // callers, charges not keyed by address): its worker form and JSON are built once.
        let served = converted.get(d);
        if (served === undefined) {
          served = workerDecision(d);
          if (Object.isFrozen(d)) {
            if (converted.size >= CONVERTED_MAX) converted.clear();
            converted.set(d, Object.freeze(served));
          }
        }
        return served;
      },
    };
    // A Map, not a WeakMap: a host that hands out new frozen decisions often would otherwise
    // grow a weak table the garbage collector must sweep; bounded, and freed with the runtime.
    const converted = new Map<HostDecision, PolicyDecision>();
    return runtime;
  };
}

function workerDecision(d: HostDecision): PolicyDecision {
  return {
    allow: d.effect === 'allow',
    status: d.status,
    reason: d.reason,
    rateLimits: d.rateLimits.map((c) => ({
      name: c.name,
      key: c.value,
      rps: c.limit / Math.max(c.windowSeconds, 1e-9),
      burst: c.burst > 0 ? c.burst : c.limit,
    })),
    // Core's one decision serializer: the body POST /v1/decide answers with (the server appends the reference).
    json: decisionJson(d),
    rule: d.rule,
    headers: d.headers,
  };
}
