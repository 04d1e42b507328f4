// POST /v1/decide answers (issue 17): the bodies built once per shared decision, per rate
// limit and per version must be exactly what was answered before (the decision JSON with the
// deciding reference; the 429 body; dry-run bodies), including across a swap of versions.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { LoadedPolicy } from './loader.js';
import { WorkerMetrics } from './observability/metrics.js';
import { toPolicyRequest } from './policy-runtime.js';
import { RateLimiter } from './rate-limit.js';
import type { PolicyDecision } from './runtime.js';
import { createWorkerServer } from './server.js';
import type { ServingPolicies } from './serving-policies.js';

/** A shared, frozen decision as the policy runtime hands out for static outcomes. */
const allowed: PolicyDecision = Object.freeze({
  allow: true,
  status: 200,
  reason: 'allowed',
  rateLimits: [{ name: 'per-tenant', key: 'acme', rps: 1, burst: 2 }],
  json: '{"effect":"allow","status":200,"reason":"allowed","rule":null,"allow":true}',
  rule: null,
});
const denied: PolicyDecision = Object.freeze({
  allow: false,
  status: 403,
  reason: 'no "scope"',
  rateLimits: [],
  json: '{"effect":"deny","status":403,"reason":"no \\"scope\\"","rule":"r1","allow":false}',
  rule: 'r1',
});

function version(v: string, digest: string): LoadedPolicy {
  return {
    ref: { policyId: 'pb-t', version: v },
    refText: `pb-t@${v}`,
    artifact: { digest } as LoadedPolicy['artifact'],
    runtime: { decide: (r) => ((r as { deny?: boolean }).deny ? denied : allowed) },
    loadedAt: new Date(),
  };
}

describe('POST /v1/decide bodies', () => {
  let serving = version('1.0.0', 'sha256:aa');
  const policies: ServingPolicies = {
    discovering: false,
    get: (id) => (id === 'pb-t' ? serving : undefined),
    list: () => [{ policyId: 'pb-t', current: serving, refused: false, lastError: undefined }],
    readiness: () => ({ ready: true }),
  };
  const servers = [
    createWorkerServer({ policies, metrics: new WorkerMetrics(), limiter: new RateLimiter({ now: () => 0 }) }),
    createWorkerServer({
      policies,
      metrics: new WorkerMetrics(),
      limiter: new RateLimiter({ now: () => 0 }),
      dryRun: true,
    }),
  ];
  const urls: string[] = [];
  before(async () => {
    for (const s of servers) {
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      urls.push(`http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/decide`);
    }
  });
  after(() => {
    for (const s of servers) s.close();
  });
  const decide = async (url: string, request: object) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify({ policy: 'pb-t', request }) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
  };

  it('answers the decision with its reference, the 429 body once the limit is spent, and follows a swap', async () => {
    const [url] = urls as [string];
    assert.deepEqual(await decide(url, { deny: true }), {
      status: 200,
      retryAfter: null,
      body: '{"effect":"deny","status":403,"reason":"no \\"scope\\"","rule":"r1","allow":false,"policy":"pb-t@1.0.0","digest":"sha256:aa"}',
    });
    const allow =
      '{"effect":"allow","status":200,"reason":"allowed","rule":null,"allow":true,"policy":"pb-t@1.0.0","digest":"sha256:aa"}';
    assert.deepEqual(await decide(url, {}), { status: 200, retryAfter: null, body: allow });
    assert.deepEqual(await decide(url, {}), { status: 200, retryAfter: null, body: allow });
    const limited = {
      allow: false,
      status: 429,
      reason: 'rate limit exceeded: per-tenant',
      rateLimit: 'per-tenant',
      policy: 'pb-t@1.0.0',
      digest: 'sha256:aa',
    };
    assert.deepEqual(await decide(url, {}), { status: 429, retryAfter: '1', body: JSON.stringify(limited) });
    // The same shared decision from another version names that version.
    serving = version('1.1.0', 'sha256:bb');
    assert.deepEqual(await decide(url, {}), {
      status: 200,
      retryAfter: null,
      body: '{"effect":"allow","status":200,"reason":"allowed","rule":null,"allow":true,"policy":"pb-t@1.1.0","digest":"sha256:bb"}',
    });
  });

  it('in dry run, allows a denial or a spent limit and carries what would have been answered', async () => {
    const [, url] = urls as [string, string];
    serving = version('2.0.0', 'sha256:cc');
    const ref = ',"policy":"pb-t@2.0.0","digest":"sha256:cc"}';
    assert.deepEqual(await decide(url, { deny: true }), {
      status: 200,
      retryAfter: null,
      body: `{"allow":true,"status":200,"reason":"dry run: would deny: no \\"scope\\"","dryRun":true,"wouldDeny":${denied.json}${ref}`,
    });
    await decide(url, {});
    await decide(url, {});
    const wouldDeny =
      '{"allow":false,"status":429,"reason":"rate limit exceeded: per-tenant","rateLimit":"per-tenant","policy":"pb-t@2.0.0","digest":"sha256:cc"}';
    assert.deepEqual(await decide(url, {}), {
      status: 200,
      retryAfter: null,
      body: `${allowed.json.slice(0, -1)},"dryRun":true,"wouldDeny":${wouldDeny}${ref}`,
    });
  });
});

describe('toPolicyRequest', () => {
  it('hands a request already in normal form on as it is, without a copy', () => {
    const r = { method: 'GET', host: 'api.example.com', path: '/v1/x', ip: '::1', headers: { 'x-api-key': 'k' }, bodySize: 3 };
    assert.equal(toPolicyRequest(r), r);
  });

  it('normalises a copy: method upper-cased, port and query dropped, header names lower-cased', () => {
    const r = { method: 'get', host: 'api.example.com:8443', path: '/v1/x?a=1', headers: { 'X-API-Key': 'k', accept: '*/*' } };
    assert.deepEqual(toPolicyRequest(r), {
      method: 'GET',
      host: 'api.example.com',
      path: '/v1/x',
      headers: { 'x-api-key': 'k', accept: '*/*' },
    });
    assert.deepEqual(r.headers, { 'X-API-Key': 'k', accept: '*/*' }, 'the given request is left alone');
  });

  it('refuses what has the wrong type, naming the field', () => {
    const base = { method: 'GET', host: 'h', path: '/' };
    assert.throws(
      () => toPolicyRequest({ ...base, headers: { a: 1 } }),
      /^RequestShapeError: request\.headers\.a must be a string$/,
    );
    assert.throws(() => toPolicyRequest({ ...base, headers: 'a' }), /request\.headers must be an object/);
    assert.throws(() => toPolicyRequest({ ...base, ip: 7 }), /request\.ip must be a string/);
    assert.throws(() => toPolicyRequest({ ...base, bodySize: -1 }), /request\.bodySize must be a non-negative number/);
    assert.throws(() => toPolicyRequest({ ...base, jwt: { verified: true } }), /request\.jwt\.claims must be an object/);
    assert.throws(() => toPolicyRequest({ host: 'h', path: '/' }), /request\.method must be a string/);
  });
});
