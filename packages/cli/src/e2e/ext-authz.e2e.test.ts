// Issue 13, gRPC: `apx worker` with APX_GRPC_PORT answers Envoy's
// envoy.service.auth.v3.Authorization/Check for signed, compiled policies. Driven first by an
// independent stack (Debian python3-grpcio, messages generated from the Envoy protos by Debian
// protoc at test time: fixtures/ext_authz_client.py), then by grpc-js. Allow with the
// policy's header mutations, deny with status and body, a rate limit (429 + Retry-After),
// a body over the policy's limit (Envoy's with_request_body), and no decision (a policy not
// loaded, an unknown one, a worker that is down) as gRPC errors, never OK.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { checkRequest, envoyProtoDirs, extAuthzClient } from '@apx/worker/test-support/ext-authz-client';
import { apx, ok, PAYMENTS_GET, REPO, scratchDir, WorkerProcess, Workspace } from './harness.js';

const PYTHON = '/usr/bin/python3';
const CLIENT = join(REPO, 'packages', 'cli', 'src', 'e2e', 'fixtures', 'ext_authz_client.py');

const skip = toolMissing('protoc') || toolMissing('protobuf-well-known-types') || toolMissing('python3-grpcio');

interface Case {
  method: string;
  host: string;
  path: string;
  headers?: Record<string, string>;
  ip?: string;
  principal?: string;
  policy?: string;
  body?: string;
}

interface PyHeader {
  key: string;
  value: string;
  append_action: number;
}

type PyAnswer =
  | {
      ok: true;
      code: number;
      http_response: 'ok_response' | 'denied_response';
      metadata: Record<string, unknown>;
      headers: PyHeader[];
      headers_to_remove?: string[];
      response_headers_to_add?: PyHeader[];
      status?: number;
      body?: string;
    }
  | { ok: false; code: string; details: string; trailers: Record<string, string> };

/** Generates the Python messages once (protoc) into a scratch directory. */
function generatePython(): string {
  const out = scratchDir('apx-ext-authz-py-');
  const r = spawnSync(PYTHON, [CLIENT, 'generate', out, ...envoyProtoDirs()], { encoding: 'utf8' });
  assert.equal(r.status, 0, `protoc generation failed: ${r.stderr}`);
  return out;
}

/** One Check per case through python3-grpcio; the answers in order. */
function pythonCheck(generated: string, target: string, cases: Case[]): PyAnswer[] {
  const r = spawnSync(PYTHON, [CLIENT, 'check', generated, target], { input: JSON.stringify(cases), encoding: 'utf8' });
  assert.equal(r.status, 0, `python client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as PyAnswer[];
}

const ACME = { 'x-api-key': 'demo-acme-prod-key' };
const CHECKOUT = 'spiffe://cluster.local/ns/shop/sa/checkout';
const OVERWRITE_IF_EXISTS_OR_ADD = 2;

describe('e2e: Envoy ext_authz over gRPC (APX_GRPC_PORT)', { skip }, () => {
  const ws = new Workspace();
  const store = ws.path('store');
  ws.stage(store, ws.compilePayments());
  // A second policy: the payments sample with a small rate limit and body limit.
  const limited = readFileSync(join(REPO, 'configs/samples/payments-api.yaml'), 'utf8')
    .replace('name: pb-pay-v1', 'name: pb-limited-v1')
    .replace(/rps: 200\n(\s+)burst: 400/, 'limit: 2\n$1window: 1h')
    .replace('maxBodyBytes: 1048576', 'maxBodyBytes: 64');
  writeFileSync(ws.path('limited.yaml'), limited);
  ok(apx(ws.dir, ['compile', '--out', 'build-limited', ws.path('limited.yaml')]));
  ws.stage(store, ws.path('build-limited', 'pb-limited-v1@1.0.0.wasm'));
  // A third: only one mesh identity (the mTLS principal Envoy verified) may call.
  writeFileSync(
    ws.path('mtls.yaml'),
    `apiVersion: apx/v1
kind: PolicyBundle
metadata: { name: pb-mtls-v1, version: 1.0.0 }
spec:
  routes:
    - name: orders
      match: { hosts: [orders.internal], paths: ["/**"], methods: [GET] }
      auth: none
  rules:
    - name: checkout-only
      when: '!("x-apx-client-principal" in request.headers) || request.headers["x-apx-client-principal"] != "${CHECKOUT}"'
      effect: deny
      status: 403
      reason: only the checkout service may call
  default: allow
`,
  );
  ok(apx(ws.dir, ['compile', '--out', 'build-mtls', ws.path('mtls.yaml')]));
  ws.stage(store, ws.path('build-mtls', 'pb-mtls-v1@1.0.0.wasm'));

  let worker: WorkerProcess;
  let target = '';
  let generated = '';
  before(async () => {
    generated = generatePython();
    worker = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      // pb-gone-v1 is configured but not in the store: it never loads.
      APX_POLICIES: 'pb-pay-v1,pb-limited-v1,pb-mtls-v1,pb-gone-v1',
      APX_DEFAULT_POLICY: 'pb-pay-v1',
      APX_GRPC_PORT: '0',
    });
    const listening = await worker.waitFor((l) => l.message.startsWith('ext_authz gRPC listening on '), 'gRPC listening');
    target = String(listening.grpc_address);
    await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'pb-pay-v1 loaded');
    await worker.waitFor((l) => l.message === 'policy loaded: pb-limited-v1@1.0.0', 'pb-limited-v1 loaded');
    await worker.waitFor((l) => l.message === 'policy loaded: pb-mtls-v1@1.0.0', 'pb-mtls-v1 loaded');
  });
  after(async () => {
    await worker?.stop();
  });

  it('python3-grpcio: allow carries the policy header mutations and dynamic metadata', () => {
    const [named, byDefault] = pythonCheck(generated, target, [
      { ...PAYMENTS_GET, policy: 'pb-pay-v1', headers: { ...ACME, 'x-debug': '1' } },
      { ...PAYMENTS_GET, headers: ACME },
    ]);
    assert.ok(named?.ok, JSON.stringify(named));
    assert.equal(named.code, 0);
    assert.equal(named.http_response, 'ok_response');
    assert.deepEqual(named.headers, [{ key: 'x-policy-version', value: '1.0.0', append_action: OVERWRITE_IF_EXISTS_OR_ADD }]);
    assert.deepEqual(named.headers_to_remove, ['x-debug']);
    assert.deepEqual(named.response_headers_to_add, [
      { key: 'cache-control', value: 'no-store', append_action: OVERWRITE_IF_EXISTS_OR_ADD },
    ]);
    const meta = named.metadata as Record<string, unknown>;
    assert.equal(meta.apx_policy, 'pb-pay-v1@1.0.0');
    assert.match(String(meta.apx_digest), /^sha256:[0-9a-f]{64}$/);
    assert.equal(meta.apx_outcome, 'allow');
    assert.equal(meta.apx_rule, null);
    assert.match(String(meta.apx_decision_id), /\S/);
    // No apx_policy on the route: APX_DEFAULT_POLICY decides.
    assert.ok(byDefault?.ok && byDefault.http_response === 'ok_response', JSON.stringify(byDefault));
    assert.equal((byDefault.metadata as Record<string, unknown>).apx_policy, 'pb-pay-v1@1.0.0');
  });

  it('python3-grpcio: deny is PERMISSION_DENIED with the policy status, body and rule', () => {
    const [scope, address] = pythonCheck(generated, target, [
      {
        ...PAYMENTS_GET,
        method: 'POST',
        path: '/v1/payments',
        headers: { 'x-api-key': 'demo-globex-key', 'idempotency-key': 'k1' },
        policy: 'pb-pay-v1',
      },
      { ...PAYMENTS_GET, headers: ACME, ip: '203.0.113.9', policy: 'pb-pay-v1' },
    ]);
    assert.ok(scope?.ok, JSON.stringify(scope));
    assert.equal(scope.code, 7);
    assert.equal(scope.http_response, 'denied_response');
    assert.equal(scope.status, 403);
    const body = JSON.parse(scope.body as string) as Record<string, unknown>;
    assert.deepEqual(
      [body.allow, body.status, body.reason, body.rule],
      [false, 403, 'payments:write scope required', 'writes-need-scope'],
    );
    assert.deepEqual(scope.headers, [
      { key: 'content-type', value: 'application/json', append_action: OVERWRITE_IF_EXISTS_OR_ADD },
    ]);
    assert.equal((scope.metadata as Record<string, unknown>).apx_rule, 'writes-need-scope');
    // The source address is the CheckRequest's: a denied network.
    assert.ok(address?.ok && address.code === 7 && address.status === 403, JSON.stringify(address));
  });

  it('python3-grpcio: a rate limit is 429 with Retry-After; a body over the limit is 413', () => {
    const request = { ...PAYMENTS_GET, headers: ACME, policy: 'pb-limited-v1' };
    const answers = pythonCheck(generated, target, [
      request,
      request,
      request,
      { ...request, method: 'POST', path: '/v1/payments', headers: { ...ACME, 'idempotency-key': 'k' }, body: 'x'.repeat(65) },
    ]);
    assert.deepEqual(
      answers.slice(0, 2).map((a) => a.ok && a.code),
      [0, 0],
    );
    const limitedAnswer = answers[2];
    assert.ok(limitedAnswer?.ok, JSON.stringify(limitedAnswer));
    assert.equal(limitedAnswer.code, 7);
    assert.equal(limitedAnswer.status, 429);
    const retryAfter = limitedAnswer.headers.find((h) => h.key === 'retry-after');
    assert.ok(retryAfter && /^[1-9]\d*$/.test(retryAfter.value), JSON.stringify(limitedAnswer.headers));
    assert.match(limitedAnswer.body as string, /rate limit exceeded: per-tenant/);
    const tooLarge = answers[3];
    assert.ok(tooLarge?.ok && tooLarge.status === 413, JSON.stringify(tooLarge));
  });

  it('python3-grpcio: the mTLS principal Envoy verified reaches the policy; a client-sent copy does not', () => {
    const orders = { method: 'GET', host: 'orders.internal', path: '/orders/7', policy: 'pb-mtls-v1' };
    const answers = pythonCheck(generated, target, [
      { ...orders, principal: CHECKOUT },
      { ...orders, principal: 'spiffe://cluster.local/ns/shop/sa/cart' },
      { ...orders, headers: { 'x-apx-client-principal': CHECKOUT } },
    ]);
    assert.deepEqual(
      answers.map((a) => (a.ok ? [a.code, a.status ?? 200] : a.code)),
      [
        [0, 200],
        [7, 403],
        [7, 403],
      ],
    );
  });

  it('python3-grpcio: no decision is a gRPC error, never OK (policy not loaded: UNAVAILABLE, unknown policy: NOT_FOUND)', () => {
    const [gone, unknown] = pythonCheck(generated, target, [
      { ...PAYMENTS_GET, headers: ACME, policy: 'pb-gone-v1' },
      { ...PAYMENTS_GET, headers: ACME, policy: 'pb-nope-v1' },
    ]);
    assert.ok(gone && !gone.ok, JSON.stringify(gone));
    assert.equal(gone.code, 'UNAVAILABLE');
    assert.equal(gone.details, 'policy pb-gone-v1 is not loaded yet');
    assert.match(gone.trailers['apx-decision-id'] ?? '', /\S/);
    assert.ok(unknown && !unknown.ok, JSON.stringify(unknown));
    assert.equal(unknown.code, 'NOT_FOUND');
    assert.equal(unknown.details, 'unknown policy pb-nope-v1');
  });

  it('grpc-js: the same service, allow, deny and failure', async () => {
    const client = await extAuthzClient(target);
    try {
      const allowed = await client.check(checkRequest({ ...PAYMENTS_GET, headers: ACME, policy: 'pb-pay-v1' }));
      assert.ok(allowed.ok, JSON.stringify(allowed));
      assert.equal((allowed.response.status as { code: number }).code, 0);
      const denied = await client.check(checkRequest({ ...PAYMENTS_GET, headers: {}, policy: 'pb-pay-v1' }));
      assert.ok(denied.ok, JSON.stringify(denied));
      const d = denied.response as { status: { code: number }; denied_response: { status: { code: string }; body: string } };
      assert.equal(d.status.code, 7);
      assert.equal(d.denied_response.status.code, 'Unauthorized');
      assert.match(d.denied_response.body, /"status":401/);
      const failed = await client.check(checkRequest({ ...PAYMENTS_GET, headers: ACME, policy: 'pb-gone-v1' }));
      assert.deepEqual(failed.ok ? failed : failed.code, 14);
      // Each decision was counted like one over HTTP.
      assert.ok((await worker.metric('apx_decisions_total{policy="pb-pay-v1",outcome="allow"}')) >= 1);
    } finally {
      client.close();
    }
  });

  it('a worker that is down answers nothing: the client gets UNAVAILABLE (Envoy fails closed)', async () => {
    const own = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_POLICIES: 'pb-pay-v1', APX_GRPC_PORT: '0' });
    const line = await own.waitFor((l) => l.message.startsWith('ext_authz gRPC listening on '), 'gRPC listening');
    await own.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'pb-pay-v1 loaded');
    assert.equal(await own.stop(), 0);
    const [answer] = pythonCheck(generated, String(line.grpc_address), [{ ...PAYMENTS_GET, headers: ACME, policy: 'pb-pay-v1' }]);
    assert.ok(answer && !answer.ok && answer.code === 'UNAVAILABLE', JSON.stringify(answer));
  });
});

describe('e2e: APX_GRPC_PORT settings', () => {
  it('a bad port is one line naming the setting, and the worker does not start', () => {
    const ws = scratchDir('apx-e2e-grpc-');
    const r = apx(ws, ['worker'], { APX_GRPC_PORT: '91910', APX_STORE: ws });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /invalid APX_GRPC_PORT="91910"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
