import { type JwtInput, type PolicyFault, PolicyHost, type PolicyRequest } from '@apx/core';
import type { PolicyRuntime, RuntimeFactory } from './runtime.js';

/** A bad request body: answered 400, never decided. */
export class RequestShapeError extends Error {
  override readonly name = 'RequestShapeError';
}

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
  const host = (str(r.host, 'host', true) as string).replace(/:\d+$/, '');
  const path = (str(r.path, 'path', true) as string).split('?')[0] as string;
  const out: PolicyRequest = { method: (str(r.method, 'method', true) as string).toUpperCase(), host, path };
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
 * instantiation; traps and malformed decisions fail closed as deny 500).
 */
export function policyHostRuntime(onFault: (fault: PolicyFault) => void): RuntimeFactory {
  return (artifact) => {
    const host = PolicyHost.load(artifact, { onFault });
    const runtime: PolicyRuntime = {
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
          detail: d as unknown as Record<string, unknown>,
        };
      },
    };
    return runtime;
  };
}
