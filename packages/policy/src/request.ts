import type { JwtInput, PolicyRequest } from '@apx/core';

/** The fields of a request as `apx eval` and `apx test` take it (docs/policy-language.md). */
export const REQUEST_FIELDS = ['method', 'host', 'path', 'ip', 'headers', 'bodySize', 'jwt'] as const;

/** What is wrong with a request value: the field (`headers.X-Key`, or '' for the whole) and why. */
export interface RequestProblem {
  field: string;
  message: string;
}

/**
 * Reads a request value (parsed JSON or YAML) into the host's PolicyRequest as a worker's
 * /v1/decide does (toPolicyRequest): method uppercased, port and query string removed, header
 * names lowercased (names repeated in another case are joined with `, `). The shape is
 * `{method, host, path, ip?, headers?, bodySize?, jwt?: {verified: false} | {verified: true, claims}}`.
 */
export function requestFromValue(raw: unknown): { request: PolicyRequest } | { problem: RequestProblem } {
  const bad = (field: string, message: string) => ({ problem: { field, message } });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', 'expected an object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!(REQUEST_FIELDS as readonly string[]).includes(k)) return bad(k, `unknown field '${k}'`);
  }
  for (const k of ['method', 'host', 'path'] as const) {
    if (typeof r[k] !== 'string') return bad(k, r[k] === undefined ? `missing '${k}'` : `'${k}' must be a string`);
  }
  // As a worker's /v1/decide does: method uppercased, port and query string removed.
  const request: PolicyRequest = {
    method: (r.method as string).toUpperCase(),
    host: (r.host as string).replace(/:\d+$/, ''),
    path: (r.path as string).split('?')[0] as string,
  };
  if (r.ip !== undefined) {
    if (typeof r.ip !== 'string') return bad('ip', "'ip' must be a string");
    request.ip = r.ip;
  }
  if (r.bodySize !== undefined) {
    if (typeof r.bodySize !== 'number' || !(r.bodySize >= 0)) return bad('bodySize', "'bodySize' must be a non-negative number");
    request.bodySize = r.bodySize;
  }
  if (r.headers !== undefined) {
    if (typeof r.headers !== 'object' || r.headers === null || Array.isArray(r.headers))
      return bad('headers', "'headers' must be an object");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(r.headers)) {
      if (typeof value !== 'string') {
        const quote = typeof value === 'number' || typeof value === 'boolean' ? ` (write "${value}")` : '';
        return bad(`headers.${name}`, `header '${name}' must be a string${quote}`);
      }
      const key = name.toLowerCase();
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
    request.headers = headers;
  }
  if (r.jwt !== undefined) {
    const j = r.jwt as Record<string, unknown>;
    if (typeof j !== 'object' || j === null || typeof j.verified !== 'boolean')
      return bad('jwt', "'jwt' must be {verified, claims}");
    if (j.verified && (typeof j.claims !== 'object' || j.claims === null || Array.isArray(j.claims)))
      return bad('jwt.claims', "'jwt.claims' must be an object");
    request.jwt = (j.verified ? { verified: true, claims: j.claims } : { verified: false }) as JwtInput;
  }
  return { request };
}
