import { type PolicyDecision as HostDecision, type JwtInput, type PolicyFault, PolicyHost, type PolicyRequest } from '@apx/core';
import type { PolicyRuntime, RuntimeFactory } from './runtime.js';

/** A bad request body: answered 400, never decided. */
export class RequestShapeError extends Error {
  override readonly name = 'RequestShapeError';
}

const UPPER = /^[A-Z]+$/;

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
  // Cheap checks first: most requests carry no port, no query and an upper-case method.
  const host = rawHost.includes(':') ? rawHost.replace(/:\d+$/, '') : rawHost;
  const path = rawPath.includes('?') ? (rawPath.split('?')[0] as string) : rawPath;
  const out: PolicyRequest = { method: UPPER.test(method) ? method : method.toUpperCase(), host, path };
  const ip = str(r.ip, 'ip', false);
  if (ip !== undefined) out.ip = ip;
  if (r.headers !== undefined) {
    if (typeof r.headers !== 'object' || r.headers === null) throw new RequestShapeError('request.headers must be an object');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new RequestShapeError(`request.headers.${k} must be a string`);
      headers[k.toLowerCase()] = v;
    }
    out.headers = headers;
  }
  if (r.bodySize !== undefined) {
    if (typeof r.bodySize !== 'number' || !(r.bodySize >= 0))
      throw new RequestShapeError('request.bodySize must be a non-negative number');
    out.bodySize = r.bodySize;
  }
  if (r.jwt !== undefined) {
    const jwt = r.jwt as { verified?: unknown; claims?: unknown };
    if (typeof jwt !== 'object' || jwt === null || typeof jwt.verified !== 'boolean') {
      throw new RequestShapeError('request.jwt must be {"verified": false} or {"verified": true, "claims": {...}}');
    }
    if (jwt.verified && (typeof jwt.claims !== 'object' || jwt.claims === null)) {
      throw new RequestShapeError('request.jwt.claims must be an object when verified');
    }
    out.jwt = jwt as JwtInput;
  }
  return out;
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
          json: decisionJson(d),
          rule: d.rule,
          headers: d.headers,
        };
      },
    };
    return runtime;
  };
}

/**
 * The decision as JSON, built by hand: it is on every response, and JSON.stringify over the
 * host's frozen, shared table objects (header mutations, the anonymous identity) costs
 * microseconds per call. Those parts are serialized once per object and reused.
 */
const frozenJson = new WeakMap<object, string>();
function cachedJson(value: object): string {
  let text = frozenJson.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    if (Object.isFrozen(value)) frozenJson.set(value, text);
  }
  return text;
}

function decisionJson(d: HostDecision): string {
  const str = (v: string | null) => (v === null ? 'null' : JSON.stringify(v));
  return (
    `{"effect":"${d.effect}","status":${d.status},"reason":${str(d.reason)},"route":${str(d.route)},"rule":${str(d.rule)},` +
    `"identity":${cachedJson(d.identity)},"headers":${cachedJson(d.headers)},` +
    `"rateLimits":${d.rateLimits.length === 0 ? '[]' : JSON.stringify(d.rateLimits)},"allow":${d.effect === 'allow'}}`
  );
}
