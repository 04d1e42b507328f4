// Envoy ext_authz (envoy.service.auth.v3) messages to and from APX: a CheckRequest becomes the
// `request` of POST /v1/decide, a gateway decision becomes a CheckResponse or a gRPC error.
// Plain objects as @grpc/proto-loader decodes them (keepCase, longs as strings, enums as
// strings, oneofs); nothing here loads the gRPC stack.
import type { GatewayDecision, GatewayRequest } from '../decision-service.js';

/** gRPC status codes used here (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** The context extension (per route, in Envoy's ext_authz per-route config) naming the policy. */
export const POLICY_EXTENSION = 'apx_policy';

/**
 * The request header that carries the mTLS peer principal Envoy verified
 * (`attributes.source.principal`: the URI SAN, else the subject, of the client certificate).
 * A value the client sent under this name is always dropped: only Envoy's attribute is trusted.
 */
export const PRINCIPAL_HEADER = 'x-apx-client-principal';

interface SocketAddressMessage {
  address?: string;
  port_value?: number;
}
interface PeerMessage {
  address?: { socket_address?: SocketAddressMessage };
  principal?: string;
}
interface HeaderValueMessage {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}
interface HttpRequestMessage {
  method?: string;
  headers?: Record<string, string>;
  header_map?: { headers?: HeaderValueMessage[] };
  path?: string;
  host?: string;
  query?: string;
  /** int64 as a decimal string; -1 when unknown. */
  size?: string | number;
  body?: string;
  raw_body?: Uint8Array;
}

/** The parts of envoy.service.auth.v3.CheckRequest APX reads. */
export interface CheckRequestMessage {
  attributes?: {
    source?: PeerMessage;
    request?: { http?: HttpRequestMessage };
    context_extensions?: Record<string, string>;
  };
}

/** A CheckRequest APX cannot decide (no HTTP attributes): answered INVALID_ARGUMENT. */
export class CheckRequestError extends Error {
  override readonly name = 'CheckRequestError';
}

/** The request's headers by lowercase name, from `header_map` (raw headers) or `headers`; pseudo-headers left out. */
function headersOf(http: HttpRequestMessage): Record<string, string> {
  const out: Record<string, string> = {};
  const list = http.header_map?.headers;
  if (list && list.length > 0) {
    for (const h of list) {
      const key = (h.key ?? '').toLowerCase();
      if (key === '' || key.startsWith(':')) continue;
      const value = h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : (h.value ?? '');
      out[key] = out[key] === undefined ? value : `${out[key]}, ${value}`;
    }
    return out;
  }
  for (const [k, v] of Object.entries(http.headers ?? {})) {
    const key = k.toLowerCase();
    if (!key.startsWith(':')) out[key] = v;
  }
  return out;
}

/** The pseudo-header `name` (`:authority`) from whichever header form Envoy sent. */
function pseudoHeader(http: HttpRequestMessage, name: string): string | undefined {
  const found = http.header_map?.headers?.find((h) => h.key === name);
  if (found) return found.raw_value && found.raw_value.length > 0 ? Buffer.from(found.raw_value).toString('utf8') : found.value;
  return http.headers?.[name];
}

/**
 * The body size: Envoy's `size` (the request's Content-Length; -1 when unknown), else the
 * body it sent (with_request_body), else the content-length header; undefined when unknown.
 */
function bodySizeOf(http: HttpRequestMessage, headers: Record<string, string>): number | undefined {
  const size = http.size === undefined ? Number.NaN : Number(http.size);
  if (Number.isSafeInteger(size) && size >= 0) {
    // Never less than the body Envoy sent (with_request_body), whatever `size` says.
    const sent = sentBodyBytes(http);
    return sent !== undefined && sent > size ? sent : size;
  }
  const sent = sentBodyBytes(http);
  if (sent !== undefined) return sent;
  const length = headers['content-length'];
  return length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
}

function sentBodyBytes(http: HttpRequestMessage): number | undefined {
  if (http.raw_body && http.raw_body.length > 0) return http.raw_body.length;
  if (http.body !== undefined && http.body !== '') return Buffer.byteLength(http.body, 'utf8');
  return undefined;
}

/**
 * A CheckRequest as the policy reference (context extension `apx_policy`; undefined: the
 * worker's APX_DEFAULT_POLICY) and the APX request: method, host (`:authority`), path with
 * its query (the worker splits it off), headers, the source address as `ip`, the mTLS
 * principal as PRINCIPAL_HEADER, and the body size.
 */
export function checkToGatewayRequest(check: CheckRequestMessage): { policy: string | undefined; request: GatewayRequest } {
  const attributes = check.attributes;
  const http = attributes?.request?.http;
  if (!http) throw new CheckRequestError('CheckRequest without attributes.request.http: only HTTP requests are decided');
  const headers = headersOf(http);
  const method = http.method || pseudoHeader(http, ':method');
  if (!method) throw new CheckRequestError('CheckRequest without an HTTP method');
  const host = http.host || pseudoHeader(http, ':authority') || headers.host;
  if (!host) throw new CheckRequestError('CheckRequest without a host (:authority)');
  let path = http.path || pseudoHeader(http, ':path');
  if (!path) throw new CheckRequestError('CheckRequest without a path');
  // Envoy puts the query in `path`; `query` is kept empty "for compatibility", but honour it if set.
  if (http.query && !path.includes('?')) path = `${path}?${http.query}`;
  delete headers[PRINCIPAL_HEADER];
  const principal = attributes?.source?.principal;
  if (principal) headers[PRINCIPAL_HEADER] = principal;
  const request: GatewayRequest = { method, host, path, headers };
  const ip = attributes?.source?.address?.socket_address?.address;
  if (ip) request.ip = ip;
  const bodySize = bodySizeOf(http, headers);
  if (bodySize !== undefined) request.bodySize = bodySize;
  const policy = attributes?.context_extensions?.[POLICY_EXTENSION];
  return { policy: policy === undefined || policy === '' ? undefined : policy, request };
}

/** google.protobuf.Value as protobufjs builds it (its bundled well-known types use camelCase names). */
type StructValue = { stringValue: string } | { boolValue: boolean } | { nullValue: 'NULL_VALUE' };

interface HeaderValueOption {
  header: { key: string; value: string };
  append: { value: boolean };
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD';
}

/** The envoy.service.auth.v3.CheckResponse APX sends (a plain object for proto-loader). */
export interface CheckResponseMessage {
  status: { code: number; message?: string };
  ok_response?: {
    headers: HeaderValueOption[];
    headers_to_remove: string[];
    response_headers_to_add: HeaderValueOption[];
  };
  denied_response?: {
    status: { code: number };
    headers: HeaderValueOption[];
    body: string;
  };
  dynamic_metadata: { fields: Record<string, StructValue> };
}

/** What Check answers: a CheckResponse (allow or deny), or a gRPC error status (no decision). */
export type CheckAnswer =
  | { ok: true; response: CheckResponseMessage }
  | { ok: false; code: number; details: string; decisionId: string };

/** Set semantics for every header (names lowercased, as HTTP/2 and Envoy want them): replaces a value already there. */
function headerOptions(headers: Record<string, string>): HeaderValueOption[] {
  const out: HeaderValueOption[] = [];
  for (const [key, value] of Object.entries(headers)) {
    // `append: false` for Envoy versions before append_action; the same meaning for later ones.
    out.push({
      header: { key: key.toLowerCase(), value },
      append: { value: false },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
    });
  }
  return out;
}

/**
 * Dynamic metadata (under the ext_authz filter's namespace, for access logs and later filters):
 * the policy reference and digest, the rule, the decision id, the outcome, and dry run.
 */
function metadataOf(d: GatewayDecision): CheckResponseMessage['dynamic_metadata'] {
  const fields: Record<string, StructValue> = {
    apx_decision_id: { stringValue: d.decisionId },
    apx_outcome: { stringValue: d.kind },
  };
  if (d.policy !== undefined) fields.apx_policy = { stringValue: d.policy };
  if (d.digest !== undefined) fields.apx_digest = { stringValue: d.digest };
  fields.apx_rule = d.rule ? { stringValue: d.rule } : { nullValue: 'NULL_VALUE' };
  if (d.dryRun) fields.apx_dry_run = { boolValue: true };
  return { fields };
}

/** The gRPC code for a decision that could not be made: never OK, so Envoy fails closed. */
function errorCode(status: number): number {
  if (status === 503) return GrpcCode.UNAVAILABLE;
  if (status === 404) return GrpcCode.NOT_FOUND;
  if (status === 400) return GrpcCode.INVALID_ARGUMENT;
  return GrpcCode.INTERNAL;
}

function errorText(body: string): string {
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error;
    if (typeof error === 'string' && error !== '') return error;
  } catch {
    // not JSON: the generic text below
  }
  return 'no decision could be made';
}

export interface CheckAnswerOptions {
  /**
   * Whether Envoy's envoy.type.v3.StatusCode defines an HTTP status (Envoy rejects others);
   * a denial with an undefined status is sent as 403. Default: every status from 100 to 599.
   */
  httpStatusDefined?: (status: number) => boolean;
}

/**
 * A gateway decision as Check's answer. Allow: OK, the policy's request-header mutations
 * (`headers`, `headers_to_remove`) and response headers (`response_headers_to_add`). Deny:
 * PERMISSION_DENIED with the policy's HTTP status, JSON body and headers (Retry-After on a rate
 * limit). Error: a gRPC error status (UNAVAILABLE for a policy not loaded, NOT_FOUND, INVALID_ARGUMENT,
 * else INTERNAL), which Envoy's failure_mode_allow: false turns into a refusal.
 */
export function checkAnswerFor(d: GatewayDecision, options: CheckAnswerOptions = {}): CheckAnswer {
  if (d.kind === 'allow') {
    return {
      ok: true,
      response: {
        status: { code: GrpcCode.OK },
        ok_response: {
          headers: headerOptions(d.headers),
          headers_to_remove: d.removeHeaders.map((h) => h.toLowerCase()),
          response_headers_to_add: headerOptions(d.responseHeaders),
        },
        dynamic_metadata: metadataOf(d),
      },
    };
  }
  if (d.kind === 'deny') {
    const defined = options.httpStatusDefined ?? ((s: number) => s >= 100 && s <= 599);
    const headers: Record<string, string> = { ...d.headers };
    if (d.body !== '' && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
    return {
      ok: true,
      response: {
        status: { code: GrpcCode.PERMISSION_DENIED },
        denied_response: {
          status: { code: defined(d.status) ? d.status : 403 },
          headers: headerOptions(headers),
          body: d.body,
        },
        dynamic_metadata: metadataOf(d),
      },
    };
  }
  return { ok: false, code: errorCode(d.status), details: errorText(d.body), decisionId: d.decisionId };
}
