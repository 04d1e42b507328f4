// Distinct traffic for bench/decide.ts: thousands of requests to the payments sample that
// each bring new values (client addresses, API keys, token subjects, ids in paths,
// idempotency keys), as a public API sees them, instead of a few requests replayed. The mix
// is generated from a fixed seed, so every run (and every checkout) decides the same requests.
import type { JwtInput, PolicyRequest } from '@apx/core';

/** mulberry32: a small deterministic generator; the mix only needs to be varied and repeatable. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ISSUER = 'https://login.example.com/';
const TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark'];

export function distinctRequests(count: number, seed = 17): PolicyRequest[] {
  const random = generator(seed);
  const int = (n: number) => Math.floor(random() * n);
  const hex = (n: number) => int(n).toString(16);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

  /** Mostly IPv4 (some in the denied 203.0.113.0/24), IPv6 (some in 2001:db8:bad::/48), a few IPv4-mapped. */
  function address(): string | undefined {
    const r = random();
    if (r < 0.55) return `${1 + int(223)}.${int(256)}.${int(256)}.${1 + int(254)}`;
    if (r < 0.6) return `203.0.113.${int(256)}`;
    if (r < 0.85) return `2001:db8:${hex(0x10000)}:${hex(0x10000)}::${hex(0x10000)}`;
    if (r < 0.9) return `2001:db8:bad:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}`;
    if (r < 0.95)
      return `2a02:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}:${hex(0x10000)}`;
    if (r < 0.98) return `::ffff:${1 + int(223)}.${int(256)}.${int(256)}.${int(256)}`;
    return undefined;
  }

  /** Claims of a token the host verified: most accepted, some refused by the policy. */
  function token(): JwtInput {
    const r = random();
    const sub = `user-${int(1_000_000)}`;
    const tenant = pick(TENANTS);
    const plan = random() < 0.7 ? 'pro' : 'free';
    const scope = pick(['payments:read', 'payments:read payments:write', 'payments:read payments:write refunds:write']);
    if (r < 0.8) return { verified: true, claims: { iss: ISSUER, sub, aud: 'payments-api', scope, tenant, plan } };
    if (r < 0.85) return { verified: true, claims: { iss: ISSUER, sub, aud: ['payments-api', 'ledger'], scope, tenant, plan } };
    if (r < 0.88)
      return { verified: true, claims: { iss: 'https://evil.example.net/', sub, aud: 'payments-api', scope, tenant } };
    if (r < 0.91) return { verified: true, claims: { iss: ISSUER, sub, aud: 'billing-api', scope, tenant } };
    if (r < 0.95) return { verified: true, claims: { iss: ISSUER, sub, aud: 'payments-api', scope: 'profile', tenant } };
    return { verified: false };
  }

  function target(): { method: string; path: string; host?: string } {
    const r = random();
    const id = `${int(1e9).toString(36)}${int(1e6).toString(36)}`;
    if (r < 0.35) return { method: 'GET', path: `/v1/payments/pay_${id}` };
    if (r < 0.55) return { method: 'POST', path: '/v1/payments' };
    if (r < 0.65) return { method: 'POST', path: `/v1/payments/pay_${id}/capture` };
    if (r < 0.72) return { method: 'POST', path: '/v1/refunds' };
    if (r < 0.8) return { method: 'GET', path: `/v1/refunds/re_${id}` };
    if (r < 0.86) return { method: 'GET', path: '/healthz', host: `lb-${int(64)}.internal.example.com` };
    if (r < 0.93) return { method: 'DELETE', path: `/v1/accounts/acct_${id}` };
    return { method: 'GET', path: `/v1/customers/${id}/payments` };
  }

  const out: PolicyRequest[] = [];
  for (let i = 0; i < count; i++) {
    const t = target();
    const req: PolicyRequest = {
      method: t.method,
      host: t.host ?? (random() < 0.97 ? 'api.example.com' : 'API.Example.com'),
      path: t.path,
    };
    const ip = address();
    if (ip !== undefined) req.ip = ip;
    req.bodySize = random() < 0.02 ? 2_000_000 + int(1e6) : int(4096);
    const headers: Record<string, string> = { 'user-agent': `client/${int(40)}`, 'x-request-id': `req-${i}-${hex(1 << 30)}` };
    const who = random();
    if (who < 0.3) headers['x-api-key'] = 'demo-acme-prod-key';
    else if (who < 0.4) headers['x-api-key'] = 'demo-globex-key';
    else if (who < 0.5) headers['x-api-key'] = `sk_live_${hex(1 << 30)}${hex(1 << 30)}`;
    else if (who < 0.95) req.jwt = token();
    if (t.method === 'POST' && random() < 0.85) headers['idempotency-key'] = `idem-${hex(1 << 30)}`;
    req.headers = headers;
    out.push(req);
  }
  // As the worker receives them: parsed from JSON bodies, so plain objects and flat strings
  // (the template literals above make rope strings, which no parsed request contains).
  return JSON.parse(JSON.stringify(out)) as PolicyRequest[];
}
