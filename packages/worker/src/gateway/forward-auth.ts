import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { type DecisionService, type GatewayDecision, type GatewayRequest, nextDecisionId } from './decision-service.js';
import type { TrustedProxies } from './trusted-proxies.js';

/** The endpoint family: `/v1/authz` (default policy) and `/v1/authz/<policy-id>[/<original path>]`. */
export const FORWARD_AUTH_PREFIX = '/v1/authz';
/** The policy segment that stands for APX_DEFAULT_POLICY when an original path follows (Envoy). */
export const DEFAULT_POLICY_SEGMENT = '_';

/**
 * Headers that describe the hop to the worker or the forward-auth protocol itself, never the
 * client's request: they are not handed to the policy.
 */
const NOT_FOR_POLICY = new Set([
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'forwarded',
  'x-real-ip',
]);
const isProtocolHeader = (name: string) =>
  NOT_FOR_POLICY.has(name) || name.startsWith('x-forwarded-') || name.startsWith('x-original-') || name.startsWith('proxy-');

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** A forward-auth call that does not say, unambiguously, which request to decide: refused (400). */
export class ForwardAuthRequestError extends Error {
  override readonly name = 'ForwardAuthRequestError';
}

/**
 * Both header families, when both are present, must say the same: a proxy sets one family and
 * passes the client's headers on, so a disagreement means a client wrote the other one (to have
 * another path or method decided than the one it asks for). Refused, never guessed.
 */
function original(h: IncomingHttpHeaders, nginxName: string, forwardedName: string): string | undefined {
  const a = first(h[nginxName]);
  const b = first(h[forwardedName]);
  if (a !== undefined && b !== undefined && a !== b) {
    throw new ForwardAuthRequestError(
      `${nginxName} and ${forwardedName} disagree; the proxy must set one and remove the other (docs/gateways.md)`,
    );
  }
  return a ?? b;
}

/**
 * The policy and the original request of a forward-auth call:
 * - policy: the path's segment after /v1/authz (`_` or none: APX_DEFAULT_POLICY);
 * - Envoy http_service (an original path follows the policy segment): that path and query,
 *   the call's own method and Host; forwarding headers about the request are ignored;
 * - otherwise: path and query from X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy),
 *   method from X-Original-Method or X-Forwarded-Method (both families must agree when both
 *   are present, and one must be), host from X-Forwarded-Host, else Host;
 * - address: the connection's, or the forwarded one when the connection is a trusted proxy;
 * - headers: the call's, without hop-by-hop and forwarding headers.
 */
export function forwardedRequest(
  req: IncomingMessage,
  url: string,
  trusted: TrustedProxies,
): { policy: string | undefined; request: GatewayRequest } {
  const rest = url.slice(FORWARD_AUTH_PREFIX.length); // '' or '/<policy>[/<path>][?query]'
  let policy: string | undefined;
  let tail = '';
  if (rest.startsWith('/')) {
    const end = rest.slice(1).search(/[/?]/);
    const segment = end < 0 ? rest.slice(1) : rest.slice(1, end + 1);
    tail = end < 0 ? '' : rest.slice(end + 1);
    policy = segment === DEFAULT_POLICY_SEGMENT || segment === '' ? undefined : decodeURIComponent(segment);
  }
  const h = req.headers;
  let method: string;
  let uri: string;
  let host: string;
  if (tail.startsWith('/')) {
    method = req.method ?? 'GET';
    uri = tail;
    host = h.host ?? '';
  } else {
    const forwardedUri = original(h, 'x-original-uri', 'x-forwarded-uri');
    if (forwardedUri === undefined) {
      throw new ForwardAuthRequestError(
        'no original request: send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy), or the original path after the policy id (Envoy path_prefix)',
      );
    }
    uri = forwardedUri;
    method = original(h, 'x-original-method', 'x-forwarded-method') ?? req.method ?? 'GET';
    host = first(h['x-forwarded-host']) ?? h.host ?? '';
  }
  const request: GatewayRequest = { method, host, path: uri, headers: policyHeaders(h) };
  const ip = trusted.clientAddress(req.socket.remoteAddress, first(h['x-forwarded-for']), first(h['x-real-ip']));
  if (ip !== undefined) request.ip = ip;
  return { policy, request };
}

function policyHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in h) {
    if (isProtocolHeader(name)) continue;
    const v = h[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A header value carries only visible ASCII and spaces: anything else is written as a JSON \u escape. */
const asciiJson = (json: string) => json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Answers a forward-auth call (see docs/gateways.md):
 * - allow: 200, empty body, the policy's request-header mutations as response headers (the
 *   proxy copies the ones it is configured to copy onto the upstream request);
 * - deny: the policy's status (401, 403, 429...), the JSON decision body, its headers
 *   (Retry-After on a rate limit);
 * - error (unknown or unloaded policy, failure): 5xx, fails closed.
 * Every answer carries X-Apx-Decision-Id. A call from nginx (X-Original-URI) also gets the
 * status and body of a denial as X-Apx-Status and X-Apx-Body: nginx hands only headers of
 * an auth_request answer to its error_page, and turns any status but 401 and 403 into 500.
 */
export function handleForwardAuth(
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  service: DecisionService,
  trusted: TrustedProxies,
): void {
  // The body of the client's request is not the policy's business here; drain whatever came.
  req.resume();
  let policy: string | undefined;
  let request: GatewayRequest;
  try {
    ({ policy, request } = forwardedRequest(req, url, trusted));
  } catch (err) {
    answer(res, req, {
      kind: 'error',
      status: 400,
      body: JSON.stringify({ error: `bad forward-auth call: ${(err as Error).message}` }),
      headers: {},
      removeHeaders: [],
      responseHeaders: {},
      decisionId: nextDecisionId(),
    });
    return;
  }
  service.decide(policy, request, (d) => answer(res, req, d));
}

function answer(res: ServerResponse, req: IncomingMessage, d: GatewayDecision): void {
  if (res.headersSent) return;
  try {
    if (d.kind === 'allow') {
      // On every allowed request: a flat header list, no intermediate object.
      const raw: string[] = ['x-apx-decision-id', d.decisionId, 'content-length', '0'];
      for (const name in d.headers) raw.push(name, d.headers[name] as string);
      if (d.dryRun) raw.push('x-apx-dry-run', 'true');
      res.writeHead(200, raw);
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'x-apx-decision-id': d.decisionId };
    for (const name in d.headers) headers[name.toLowerCase()] = d.headers[name] as string;
    if (req.headers['x-original-uri'] !== undefined) {
      headers['x-apx-status'] = String(d.status);
      headers['x-apx-body'] = asciiJson(d.body);
    }
    res.writeHead(d.status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(d.body)),
    });
    res.end(d.body);
  } catch (err) {
    // A header the policy set that HTTP cannot carry, or the like: refuse, never allow.
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ error: `forward-auth answer failed: ${(err as Error).message}` });
    res.writeHead(500, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }
}
