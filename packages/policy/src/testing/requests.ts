import type { PolicyRequest } from '@apx/core';
import fc from 'fast-check';
import type { Policy } from '../model.js';

/**
 * Requests drawn around a policy: its own hosts, paths, methods, key hashes' keys, issuers,
 * audiences, scopes, roles and CIDRs, mutated and mixed with strangers, so that generated
 * requests hit every branch (matching and not) rather than bouncing off the first check.
 */
export function requestArbitrary(policy: Policy, knownKeys: readonly string[]): fc.Arbitrary<PolicyRequest> {
  const pathSegs = new Set<string>(['', 'x', 'v1', 'api', '..', '%2F', 'ü']);
  for (const r of policy.routes)
    for (const p of r.paths) for (const s of p.split('/')) if (s !== '*' && s !== '**') pathSegs.add(s);
  const segs = [...pathSegs];
  const patternPath = fc.constantFrom(...policy.routes.flatMap((r) => r.paths)).chain((p) =>
    fc.array(fc.constantFrom(...segs, 'refunds', 'sessions', '123'), { minLength: 3, maxLength: 3 }).map((fill) => {
      let i = 0;
      return p.replace(/\*\*|\*/g, (m) => (m === '**' ? (fill.slice(0, 2).join('/') ?? '') : (fill[i++] ?? 'x')));
    }),
  );
  const randomPath = fc.array(fc.constantFrom(...segs), { minLength: 0, maxLength: 5 }).map((s) => `/${s.join('/')}`);
  const path = fc.oneof(
    { arbitrary: patternPath, weight: 8 },
    { arbitrary: patternPath.map((p) => `${p}/`), weight: 1 },
    { arbitrary: randomPath, weight: 1 },
    { arbitrary: fc.constantFrom('', '/', 'v1', '//'), weight: 1 },
  );

  const hosts = policy.routes.flatMap((r) => r.hosts).map((h) => (h.startsWith('*.') ? `a${h.slice(1)}` : h));
  const host = fc.oneof(
    { arbitrary: fc.constantFrom(...hosts), weight: 8 },
    { arbitrary: fc.constantFrom('example.com', 'evil.com', ''), weight: 1 },
    { arbitrary: fc.constantFrom(...hosts).map((h) => h.toUpperCase()), weight: 1 },
    { arbitrary: fc.constantFrom(...policy.routes.flatMap((r) => r.hosts)), weight: 1 },
  );
  const method = fc.oneof(
    { arbitrary: fc.constantFrom('GET', 'POST'), weight: 4 },
    { arbitrary: fc.constantFrom('PUT', 'DELETE', 'HEAD', 'PATCH', 'get', 'OPTIONS'), weight: 1 },
  );

  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
  const fromCidr = fc.constantFrom(...[...policy.ip.allow, ...policy.ip.deny]).chain((c) =>
    fc.nat(255).map((last) => {
      const b = Uint8Array.from(c.bytes);
      if (c.family === 4) {
        b[3] = c.bits >= 32 ? (b[3] as number) : last;
        return Array.from(b.subarray(0, 4)).join('.');
      }
      b[15] = last;
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16));
      return groups.join(':');
    }),
  );
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
  const cidrs = [...policy.ip.allow, ...policy.ip.deny];
  const ip = fc.option(
    fc.oneof(
      { arbitrary: v4, weight: 4 },
      { arbitrary: v6, weight: 1 },
      ...(cidrs.length > 0
        ? [
            { arbitrary: fromCidr, weight: 2 },
            { arbitrary: fromCidr.map((a) => (a.includes(':') ? a : `::ffff:${a}`)), weight: 1 },
            {
              // IPv4-mapped in hex form: ::ffff:0a01:0203 is 10.1.2.3.
              arbitrary: fromCidr.map((a) => {
                if (a.includes(':')) return a.toUpperCase();
                const [b0 = 0, b1 = 0, b2 = 0, b3 = 0] = a.split('.').map(Number);
                return `::FFFF:${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
              }),
              weight: 1,
            },
          ]
        : []),
      { arbitrary: fc.constantFrom('not-an-ip', '10.0.0.256', '::1', '127.0.0.1', '::', '1::'), weight: 1 },
    ),
    { nil: undefined, freq: 10 },
  );

  const keyHeader = policy.apiKeys?.header ?? 'x-api-key';
  const apiKey = fc.option(
    fc.oneof({ arbitrary: fc.constantFrom(...knownKeys), weight: 4 }, { arbitrary: fc.constantFrom('wrong-key', ''), weight: 1 }),
    { nil: undefined, freq: 2 },
  );
  const words = new Set<string>([
    'read',
    'admin',
    'payments:read',
    'payments:write',
    'refunds:write',
    'deployer',
    'support',
    'auditor',
    'export',
    'pro',
    'free',
  ]);
  for (const k of policy.apiKeys?.keys ?? []) for (const w of [...k.scopes, ...k.roles, k.plan, k.tenant]) words.add(w);
  for (const s of policy.jwt?.requiredScopes ?? []) words.add(s);
  const word = fc.constantFrom(...words);
  const claims = fc.record(
    {
      iss: fc.constantFrom(policy.jwt?.issuer ?? 'https://issuer', 'https://evil/'),
      sub: fc.constantFrom('alice', 'bob', ''),
      aud: fc.oneof(
        fc.constantFrom(...(policy.jwt?.audiences ?? []), 'other'),
        fc.array(fc.constantFrom(...(policy.jwt?.audiences ?? []), 'other')),
      ),
      scope: fc.array(word, { maxLength: 4 }).map((w) => w.join(' ')),
      roles: fc.array(word, { maxLength: 3 }),
      tenant: fc.constantFrom('acme', 'globex', ''),
      plan: fc.constantFrom('pro', 'free', 'internal'),
    },
    { requiredKeys: ['iss'] },
  );
  const jwt = fc.option(
    fc.oneof(
      fc.constant({ verified: false as const }),
      claims.map((c) => ({ verified: true as const, claims: c })),
    ),
    {
      nil: undefined,
    },
  );
  const headerNames = ['idempotency-key', 'x-ticket-id', 'x-search-depth', 'x-other', 'constructor'];
  const headerValue = fc.constantFrom('', '1', '2', 'SUP-42', 'abc', 'ünï');
  const headers = fc.dictionary(fc.constantFrom(...headerNames), headerValue, { maxKeys: 3 });
  const bodySize = fc.option(
    fc.oneof(
      { arbitrary: fc.constantFrom(0, 0, 0, 10, 500), weight: 12 },
      { arbitrary: fc.constantFrom(1024, 1025, 65536, 65537, 1048576, 1048577, 2 ** 32, 2 ** 40), weight: 2 },
      { arbitrary: fc.nat(), weight: 1 },
    ),
    { nil: undefined },
  );

  return fc
    .record({ method, host, path, ip, headers, apiKey, jwt, bodySize })
    .map(({ apiKey: key, headers: h, ip: addr, jwt: token, bodySize: size, ...rest }) => {
      const req: PolicyRequest = { ...rest, headers: key === undefined ? h : { ...h, [keyHeader]: key } };
      if (addr !== undefined) req.ip = addr;
      if (token !== undefined) req.jwt = token;
      if (size !== undefined) req.bodySize = size;
      return req;
    });
}
