// The baseline of bench/decide.ts: configs/samples/payments-api.yaml evaluated by plain,
// hand-written JavaScript, the way a team would write this one policy without APX. It gives
// the same decisions as the compiled module (the bench asserts it on every request before
// timing) and does the same work: it hashes every presented API key (the policy stores only
// SHA-256 hashes), parses the client address and checks it against the deny CIDRs, matches
// routes, checks JWT claims, runs the rules in order and lists the rate-limit charges.
import { hash } from 'node:crypto';
import type { DecisionIdentity, PolicyDecision, PolicyRequest, RateLimitCharge } from '@apx/core';

const ANONYMOUS: DecisionIdentity = { kind: 'none', id: '', tenant: '', plan: '' };
const NO_HEADERS: PolicyDecision['headers'] = { request: { set: {}, remove: [] }, response: { set: {}, remove: [] } };
const ALLOW_HEADERS: PolicyDecision['headers'] = {
  request: { set: { 'X-Policy-Version': '1.0.0' }, remove: ['X-Debug'] },
  response: { set: { 'Cache-Control': 'no-store' }, remove: [] },
};

const KEYS = new Map<string, { id: string; tenant: string; plan: string; scopes: string[] }>([
  [
    'e99c53f5abcdd52fe1988787b71d6873c410098c897e0b9a644edbfa2e3a085b',
    { id: 'acme-prod', tenant: 'acme', plan: 'pro', scopes: ['payments:read', 'payments:write', 'refunds:write'] },
  ],
  [
    'e334451b9fa9d061e6c6ef45e13d882999bb2024a6e1678e2715a9358bf07431',
    { id: 'globex', tenant: 'globex', plan: 'free', scopes: ['payments:read'] },
  ],
]);

/** IPv4 text as a 32-bit number, or -1. Leading zeros are refused, as the policy host does. */
function ipv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let n = 0;
  for (const p of parts) {
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p[0] === '0') || !/^\d+$/.test(p)) return -1;
    const v = Number(p);
    if (v > 255) return -1;
    n = n * 256 + v;
  }
  return n;
}

/** IPv6 text as its 8 groups, or undefined (zone ids refused, like the host). */
function ipv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2 || text.includes('%')) return undefined;
  const head = halves[0] === '' ? [] : (halves[0] as string).split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? (halves[1] as string).split(':') : [];
  const groups: number[] = [];
  for (const g of [...head, ...tail]) {
    if (g.includes('.')) {
      const v4 = ipv4(g);
      if (v4 < 0) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      groups.push(Number.parseInt(g, 16));
    }
  }
  if (halves.length === 1) return groups.length === 8 ? groups : undefined;
  if (groups.length > 7) return undefined;
  const zeros = new Array(8 - groups.length).fill(0);
  return [...groups.slice(0, head.length), ...zeros, ...groups.slice(head.length)];
}

/** `ip.deny: [203.0.113.0/24, "2001:db8:bad::/48"]`; IPv4-mapped IPv6 counts as IPv4. */
function addressDenied(ip: string | undefined): boolean {
  if (ip === undefined) return false;
  if (!ip.includes(':')) return ipv4(ip) >>> 8 === (203 << 16) + (0 << 8) + 113;
  const g = ipv6(ip);
  if (g === undefined) return false;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return (g[6] as number) === 203 << 8 && (g[7] as number) >>> 8 === 113;
  }
  return g[0] === 0x2001 && g[1] === 0x0db8 && g[2] === 0x0bad;
}

function routeOf(host: string, method: string, path: string): 'payments' | 'refunds' | 'health' | null {
  const api = host === 'api.example.com';
  const readOrWrite = method === 'GET' || method === 'POST';
  if (api && readOrWrite && (path === '/v1/payments' || path.startsWith('/v1/payments/'))) return 'payments';
  if (api && readOrWrite && path === '/v1/refunds') return 'refunds';
  if (api && readOrWrite && path.startsWith('/v1/refunds/')) {
    const rest = path.slice('/v1/refunds/'.length);
    if (rest !== '' && !rest.includes('/')) return 'refunds';
  }
  const internal = host.endsWith('.internal.example.com') && host.length > '.internal.example.com'.length;
  if ((api || internal) && method === 'GET' && path === '/healthz') return 'health';
  return null;
}

function decision(
  effect: 'allow' | 'deny',
  status: number,
  reason: string,
  route: string | null,
  rule: string | null,
  identity: DecisionIdentity,
): PolicyDecision {
  const rateLimits: RateLimitCharge[] = [];
  if (effect === 'allow') {
    if (identity.tenant !== '') {
      rateLimits.push({
        name: 'per-tenant',
        key: 'identity.tenant',
        value: identity.tenant,
        limit: 200,
        windowSeconds: 1,
        burst: 400,
      });
    }
    if (route === 'refunds' && identity.id !== '') {
      rateLimits.push({
        name: 'refunds-per-key',
        key: 'identity.id',
        value: identity.id,
        limit: 1000,
        windowSeconds: 86400,
        burst: 1000,
      });
    }
  }
  return { effect, status, reason, route, rule, identity, headers: effect === 'allow' ? ALLOW_HEADERS : NO_HEADERS, rateLimits };
}

export function plainDecide(req: PolicyRequest): PolicyDecision {
  const deny = (status: number, reason: string, route: string | null = null) =>
    decision('deny', status, reason, route, null, ANONYMOUS);
  if ((req.bodySize ?? 0) > 1048576) return deny(413, 'request body too large');
  if (addressDenied(req.ip)) return deny(403, 'client address denied');
  const route = routeOf(req.host.toLowerCase(), req.method, req.path);
  if (route === null) return deny(404, 'no matching route');

  let identity = ANONYMOUS;
  let scopes: readonly string[] = [];
  if (route !== 'health') {
    const apiKey = req.headers?.['x-api-key'];
    if (apiKey !== undefined) {
      // crypto.hash: the cheapest one-shot digest node:crypto offers (a third of createHash's cost).
      const key = KEYS.get(hash('sha256', apiKey));
      if (key === undefined) return deny(401, 'invalid API key', route);
      identity = { kind: 'apiKey', id: key.id, tenant: key.tenant, plan: key.plan };
      scopes = key.scopes;
    } else if (req.jwt !== undefined) {
      if (!req.jwt.verified) return deny(401, 'invalid token', route);
      const c = req.jwt.claims;
      if (c.iss !== 'https://login.example.com/') return deny(401, 'invalid token', route);
      const aud = typeof c.aud === 'string' ? [c.aud] : (c.aud ?? []);
      if (!aud.includes('payments-api')) return deny(401, 'invalid token', route);
      scopes = typeof c.scope === 'string' ? c.scope.split(' ').filter((s) => s !== '') : (c.scp ?? []);
      if (!scopes.includes('payments:read')) return deny(403, 'insufficient scope', route);
      identity = { kind: 'jwt', id: c.sub ?? '', tenant: c.tenant ?? '', plan: c.plan ?? '' };
    }
    if (identity.kind === 'none') return deny(401, 'authentication required', route);
  }

  const m = req.method;
  const p = req.path;
  const rule = (name: string, status: number, reason: string) => decision('deny', status, reason, route, name, identity);
  if (m === 'POST' && !scopes.includes('payments:write') && p.startsWith('/v1/payments')) {
    return rule('writes-need-scope', 403, 'payments:write scope required');
  }
  if (p.startsWith('/v1/refunds') && !scopes.includes('refunds:write'))
    return rule('refunds-need-scope', 403, 'refund scope required');
  if (identity.plan === 'free' && m !== 'GET') return rule('free-plan-read-only', 402, 'upgrade plan to write');
  if (m === 'POST' && req.headers?.['idempotency-key'] === undefined) {
    return rule('idempotency-key-on-post', 400, 'Idempotency-Key header required');
  }
  return decision('allow', 200, 'allowed by default', route, null, identity);
}
