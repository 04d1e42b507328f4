// The host reuses encoding work between requests (interned strings, the parsed address, the
// key hash, shared decisions of static outcomes). These tests check that reuse never changes
// an answer: mutated request objects, values that stop fitting, and a full intern region.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PolicyFault, PolicyHost, type PolicyRequest } from '@apx/core';
import { ReferenceEvaluator } from './reference/evaluator.js';
import { compileSample, signAndVerify } from './testing/artifacts.js';

async function payments() {
  const compiled = await compileSample('payments-api.yaml');
  const faults: PolicyFault[] = [];
  const host = PolicyHost.load(signAndVerify(compiled.wasm), { onFault: (f) => faults.push(f) });
  const reference = new ReferenceEvaluator(compiled.policy);
  const check = (req: PolicyRequest) => {
    // A copy for the reference: the host must not depend on the object it saw before.
    const want = reference.decide(structuredClone(req));
    assert.deepEqual(host.decide(req), want, JSON.stringify(req));
  };
  return { host, check, faults };
}

const base = { host: 'api.example.com', ip: '192.0.2.10', bodySize: 512 };

describe('host reuse between requests', () => {
  it('sees every change to a request object the caller mutates between decisions', async () => {
    const { check, faults } = await payments();
    const headers: Record<string, string> = { 'x-api-key': 'demo-acme-prod-key', 'idempotency-key': 'k' };
    const req: { -readonly [K in keyof PolicyRequest]: PolicyRequest[K] } = {
      ...base,
      method: 'POST',
      path: '/v1/payments',
      headers,
    };
    check(req);
    req.method = 'GET';
    check(req);
    headers['x-api-key'] = 'demo-globex-key';
    req.method = 'POST';
    check(req);
    delete headers['idempotency-key'];
    check(req);
    req.ip = '203.0.113.7';
    check(req);
    req.ip = '192.0.2.10';
    req.host = 'API.Example.COM';
    check(req);
    req.path = '/v1/refunds';
    headers['x-api-key'] = 'demo-acme-prod-key';
    check(req);
    delete headers['x-api-key'];
    const claims: Record<string, unknown> = {
      iss: 'https://login.example.com/',
      sub: 'u-1',
      aud: 'payments-api',
      scope: 'payments:read',
      tenant: 'acme',
      plan: 'pro',
    };
    req.jwt = { verified: true, claims };
    req.method = 'GET';
    req.path = '/v1/payments/p';
    check(req);
    claims.scope = 'payments:write';
    check(req);
    claims.scope = '  payments:read   payments:write ';
    check(req);
    claims.scope = 'payments:read paiements:écrire';
    check(req);
    claims.tenant = 'globex';
    claims.plan = 'free';
    req.method = 'POST';
    check(req);
    delete claims.scope;
    claims.scp = ['payments:read', 'payments:write'];
    claims.aud = ['other', 'payments-api'];
    check(req);
    claims.aud = ['other'];
    check(req);
    req.jwt = { verified: false };
    check(req);
    // Back and forth between the same values: what is skipped must still be in place.
    const token = { verified: true as const, claims: { ...claims } };
    req.jwt = token;
    check(req);
    delete req.jwt;
    check(req);
    req.jwt = token;
    check(req);
    req.jwt = { verified: false };
    check(req);
    delete req.jwt;
    check(req);
    // A header the rules read (an authenticated POST), present, absent, present again.
    headers['x-api-key'] = 'demo-acme-prod-key';
    req.path = '/v1/payments';
    headers['idempotency-key'] = 'k';
    check(req);
    delete headers['idempotency-key'];
    check(req);
    headers['idempotency-key'] = 'k';
    check(req);
    assert.deepEqual(faults, []);
  });

  it('gives a large request the whole request area even when strings are interned', async () => {
    const { host, check, faults } = await payments();
    const small = { ...base, method: 'GET', path: '/v1/payments/p', headers: { 'x-api-key': 'demo-acme-prod-key' } };
    check(small);
    // Fits the 64 KiB area only if nothing is set aside for interned strings.
    const large = { ...small, path: `/v1/payments/${'a'.repeat(64_000)}` };
    check(large);
    check(small);
    check(large);
    assert.deepEqual(faults, []);
    // Too large either way: still the host's 431.
    assert.equal(host.decide({ ...small, path: `/${'a'.repeat(70_000)}` }).status, 431);
    check(small);
  });

  it('keeps deciding correctly when the intern region fills up', async () => {
    const { check, faults } = await payments();
    for (let i = 0; i < 3000; i++) {
      check({
        ...base,
        method: i % 3 === 0 ? 'GET' : 'POST',
        path: `/v1/payments/pay_${i}`,
        host: i % 7 === 0 ? `h${i}.internal.example.com` : base.host,
        headers: { 'x-api-key': i % 5 === 0 ? 'demo-globex-key' : 'demo-acme-prod-key', 'idempotency-key': `k-${i}` },
      });
    }
    assert.deepEqual(faults, []);
  });

  it('charges each JWT caller by its own claims when callers interleave', async () => {
    const { check, faults } = await payments();
    const token = (sub: string, tenant: string, scope: string) => ({
      verified: true as const,
      claims: { iss: 'https://login.example.com/', sub, aud: 'payments-api', scope, tenant, plan: 'pro' },
    });
    const callers = [
      token('u-1', 'acme', 'payments:read'),
      token('u-2', 'globex', 'payments:read payments:write'),
      token('u-1', 'acme', 'payments:read'),
      token('u-3', 'acme', 'payments:read  refunds:write'),
    ];
    for (let i = 0; i < 12; i++) {
      const jwt = callers[i % callers.length] as (typeof callers)[number];
      check({
        ...base,
        method: i % 2 ? 'GET' : 'POST',
        path: i % 3 ? '/v1/payments' : '/v1/refunds',
        jwt,
        headers: { 'idempotency-key': 'k' },
      });
    }
    assert.deepEqual(faults, []);
  });

  it('still refuses a missing attribute after requests that had it', async () => {
    const { host, faults } = await payments();
    const req = { ...base, method: 'GET', path: '/healthz', host: 'lb.internal.example.com' };
    assert.equal(host.decide(req).effect, 'allow');
    // 70 characters: written per request, not interned.
    const long = { ...req, path: `/healthz${'x'.repeat(70)}` };
    for (const field of ['method', 'host', 'path'] as const) {
      assert.equal(host.decide(long).status, 404);
      const broken = { ...req, [field]: undefined } as unknown as PolicyRequest;
      assert.deepEqual([host.decide(broken).status, faults.at(-1)?.kind], [400, 'invalid-request']);
      assert.equal(host.decide(req).effect, 'allow');
    }
  });

  it('decides thousands of distinct callers as the reference does, caches bounded or not', async () => {
    const { check, faults } = await payments();
    // Distinct addresses (IPv4, IPv6, mapped, denied ranges, refused forms), unknown keys
    // between good ones, token callers, and early denials that share an outcome slot.
    const addresses = (i: number) =>
      [
        `10.${i >> 8}.${i & 255}.9`,
        `2001:db8:${i.toString(16)}::1`,
        `203.0.113.${i & 255}`,
        `2001:db8:bad::${i.toString(16)}`,
        `::ffff:203.0.113.${i & 255}`,
        `::ffff:10.0.${i & 255}.1`,
        `fe80::${i.toString(16)}%eth0`,
        `010.0.0.${i & 255}`,
      ][i % 8] as string;
    for (let i = 0; i < 3000; i++) {
      const key = i % 3 === 0 ? `unknown-${i}` : i % 3 === 1 ? 'demo-acme-prod-key' : 'demo-globex-key';
      const jwt =
        i % 5 === 0
          ? {
              verified: true as const,
              claims: {
                iss: 'https://login.example.com/',
                sub: `u-${i}`,
                aud: 'payments-api',
                scope: 'payments:read',
                tenant: `t${i % 7}`,
              },
            }
          : undefined;
      const req: PolicyRequest = {
        ...base,
        method: i % 4 === 0 ? 'POST' : 'GET',
        path: i % 11 === 0 ? `/v1/other/${i}` : `/v1/payments/pay_${i}`,
        ip: addresses(i),
        bodySize: i % 13 === 0 ? 2_000_000 : 100,
        headers: jwt ? { 'idempotency-key': `k${i}` } : { 'x-api-key': key, 'idempotency-key': `k${i}` },
        ...(jwt ? { jwt } : {}),
      };
      check(req);
    }
    assert.deepEqual(faults, []);
  });

  it('keeps apart early denials that share route, rule and key', async () => {
    const { host, check } = await payments();
    const ok = { ...base, method: 'GET', path: '/v1/payments/p', headers: { 'x-api-key': 'demo-acme-prod-key' } };
    for (let i = 0; i < 3; i++) {
      check({ ...ok, bodySize: 2_000_000 });
      check({ ...ok, ip: '203.0.113.1' });
      check({ ...ok, path: '/nowhere' });
    }
    assert.equal(host.decide({ ...ok, path: '/nowhere' }), host.decide({ ...ok, path: '/elsewhere' }));
  });

  it("shares a JWT caller's decision while the caller stays the same, and only then", async () => {
    const { host, check } = await payments();
    const claims = {
      iss: 'https://login.example.com/',
      sub: 'u-1',
      aud: 'payments-api',
      scope: 'payments:read',
      tenant: 'acme',
      plan: 'pro',
    };
    const req = (sub: string) => ({
      ...base,
      method: 'GET',
      path: '/v1/payments/p',
      jwt: { verified: true as const, claims: { ...claims, sub } },
    });
    // The first decision of a caller is built; from the second in a row on, one is shared.
    host.decide(req('u-1'));
    const a = host.decide(req('u-1'));
    assert.equal(host.decide(req('u-1')), a);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.identity));
    const b = host.decide(req('u-2'));
    assert.notEqual(b, a);
    assert.equal(b.identity.id, 'u-2');
    assert.equal(a.identity.id, 'u-1');
    check(req('u-1'));
    check(req('u-2'));
  });

  it('hands out the same frozen decision for a repeated static outcome', async () => {
    const { host } = await payments();
    const req = { ...base, method: 'GET', path: '/v1/payments/p', headers: { 'x-api-key': 'demo-acme-prod-key' } };
    const a = host.decide(req);
    const b = host.decide({ ...req, path: '/v1/payments/q' });
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
    assert.ok(Object.isFrozen(a.rateLimits));
  });
});
