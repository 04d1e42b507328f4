// Envoy ext_authz: CheckRequest to the APX request, gateway decisions to CheckResponse or a
// gRPC error, then the same over the wire through grpc-js with the Envoy protos. The decision
// service here is a stand-in that records what it was asked and answers what the test says;
// the real pipeline behind Check is driven end to end in packages/cli/src/e2e.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { LoadedPolicy } from '../../loader.js';
import type { PolicyDecision } from '../../runtime.js';
import { checkRequest, extAuthzClient } from '../../test-support/ext-authz-client.js';
import type { DecisionOutcome, DecisionService, GatewayDecision } from '../decision-service.js';
import {
  CheckRequestError,
  type CheckRequestMessage,
  checkAnswerFor,
  checkToGatewayRequest,
  GrpcCode,
  PRINCIPAL_HEADER,
} from './ext-authz-mapping.js';
import { type ExtAuthzServer, startExtAuthzServer } from './ext-authz-server.js';

const allow = (extra: Partial<GatewayDecision> = {}): GatewayDecision => ({
  kind: 'allow',
  status: 200,
  body: '',
  headers: { 'x-policy-version': '1.0.0' },
  removeHeaders: ['x-debug'],
  responseHeaders: { 'cache-control': 'no-store' },
  policy: 'pb-pay-v1@1.0.0',
  digest: 'sha256:ab12',
  rule: null,
  decisionId: 'd-1',
  ...extra,
});

const deny = (status: number, extra: Partial<GatewayDecision> = {}): GatewayDecision => ({
  kind: 'deny',
  status,
  body: `{"allow":false,"status":${status},"reason":"no"}`,
  headers: {},
  removeHeaders: [],
  responseHeaders: {},
  policy: 'pb-pay-v1@1.0.0',
  digest: 'sha256:ab12',
  rule: 'writes-need-scope',
  decisionId: 'd-2',
  ...extra,
});

const failure = (status: number, error: string): GatewayDecision => ({
  kind: 'error',
  status,
  body: JSON.stringify({ error }),
  headers: {},
  removeHeaders: [],
  responseHeaders: {},
  decisionId: 'd-3',
});

describe('ext_authz: CheckRequest to the APX request', () => {
  it('maps method, host, path with query, headers, source address and the policy extension', () => {
    const { policy, request } = checkToGatewayRequest(
      checkRequest({
        method: 'POST',
        host: 'api.example.com:8443',
        path: '/v1/payments?limit=5',
        headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
        ip: '2001:db8::7',
        policy: 'pb-pay-v1',
      }) as CheckRequestMessage,
    );
    assert.equal(policy, 'pb-pay-v1');
    assert.deepEqual(request, {
      method: 'POST',
      host: 'api.example.com:8443',
      path: '/v1/payments?limit=5',
      // Pseudo-headers are not request headers: method, host and path carry them.
      headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
      ip: '2001:db8::7',
    });
  });

  it('leaves the policy to APX_DEFAULT_POLICY when the route names none', () => {
    assert.equal(
      checkToGatewayRequest(checkRequest({ method: 'GET', host: 'h', path: '/' }) as CheckRequestMessage).policy,
      undefined,
    );
  });

  it('presents the verified mTLS principal as x-apx-client-principal, and never the one a client sent', () => {
    const spoofed = { [PRINCIPAL_HEADER]: 'spiffe://evil/admin' };
    const withPeer = checkToGatewayRequest(
      checkRequest({
        method: 'GET',
        host: 'h',
        path: '/',
        headers: spoofed,
        principal: 'spiffe://cluster.local/ns/a/sa/b',
      }) as CheckRequestMessage,
    );
    assert.equal(withPeer.request.headers?.[PRINCIPAL_HEADER], 'spiffe://cluster.local/ns/a/sa/b');
    const withoutPeer = checkToGatewayRequest(
      checkRequest({ method: 'GET', host: 'h', path: '/', headers: spoofed }) as CheckRequestMessage,
    );
    assert.equal(withoutPeer.request.headers?.[PRINCIPAL_HEADER], undefined);
  });

  it('reads raw headers (encode_raw_headers: header_map), joining repeated ones', () => {
    const { request } = checkToGatewayRequest({
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: '/a',
            header_map: {
              headers: [
                { key: ':authority', raw_value: Buffer.from('api.example.com') },
                { key: 'X-Tag', raw_value: Buffer.from('one') },
                { key: 'x-tag', raw_value: Buffer.from('two') },
                { key: 'accept', value: 'text/plain' },
              ],
            },
          },
        },
      },
    });
    assert.equal(request.host, 'api.example.com');
    assert.deepEqual(request.headers, { 'x-tag': 'one, two', accept: 'text/plain' });
  });

  it('sizes the body: Envoy size, else the body it sent, else content-length', () => {
    const size = (http: Record<string, unknown>) =>
      checkToGatewayRequest({ attributes: { request: { http: { method: 'POST', host: 'h', path: '/', ...http } } } }).request
        .bodySize;
    assert.equal(size({ size: '2048' }), 2048);
    assert.equal(size({ size: '-1', body: 'héllo' }), 6);
    assert.equal(size({ size: '-1', raw_body: Buffer.alloc(10) }), 10);
    assert.equal(size({ size: '-1', headers: { 'content-length': '77' } }), 77);
    assert.equal(size({ size: '3', body: 'longer than three' }), 17);
    assert.equal(size({}), undefined);
  });

  it('refuses a CheckRequest without HTTP attributes, method, host or path', () => {
    assert.throws(() => checkToGatewayRequest({}), CheckRequestError);
    assert.throws(() => checkToGatewayRequest({ attributes: { request: { http: { host: 'h', path: '/' } } } }), /method/);
    assert.throws(() => checkToGatewayRequest({ attributes: { request: { http: { method: 'GET', path: '/' } } } }), /host/);
    assert.throws(() => checkToGatewayRequest({ attributes: { request: { http: { method: 'GET', host: 'h' } } } }), /path/);
  });
});

describe('ext_authz: decisions to CheckResponse', () => {
  it('allow: OK with header mutations (set semantics), removals, response headers and metadata', () => {
    const answer = checkAnswerFor(allow());
    assert.ok(answer.ok);
    const r = answer.response;
    assert.equal(r.status.code, GrpcCode.OK);
    assert.deepEqual(r.ok_response?.headers, [
      {
        header: { key: 'x-policy-version', value: '1.0.0' },
        append: { value: false },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      },
    ]);
    assert.deepEqual(r.ok_response?.headers_to_remove, ['x-debug']);
    assert.deepEqual(
      r.ok_response?.response_headers_to_add.map((h) => h.header),
      [{ key: 'cache-control', value: 'no-store' }],
    );
    assert.equal(r.denied_response, undefined);
    assert.deepEqual(r.dynamic_metadata.fields, {
      apx_decision_id: { stringValue: 'd-1' },
      apx_outcome: { stringValue: 'allow' },
      apx_policy: { stringValue: 'pb-pay-v1@1.0.0' },
      apx_digest: { stringValue: 'sha256:ab12' },
      apx_rule: { nullValue: 'NULL_VALUE' },
    });
  });

  it('dry run: an allow that says so in the metadata', () => {
    const answer = checkAnswerFor(allow({ dryRun: true, rule: 'writes-need-scope' }));
    assert.ok(answer.ok);
    assert.deepEqual(answer.response.dynamic_metadata.fields.apx_dry_run, { boolValue: true });
    assert.deepEqual(answer.response.dynamic_metadata.fields.apx_rule, { stringValue: 'writes-need-scope' });
  });

  it('deny: PERMISSION_DENIED with the policy status, JSON body and rule', () => {
    const answer = checkAnswerFor(deny(402));
    assert.ok(answer.ok);
    const r = answer.response;
    assert.equal(r.status.code, GrpcCode.PERMISSION_DENIED);
    assert.equal(r.ok_response, undefined);
    assert.equal(r.denied_response?.status.code, 402);
    assert.equal(r.denied_response?.body, '{"allow":false,"status":402,"reason":"no"}');
    assert.deepEqual(
      r.denied_response?.headers.map((h) => h.header),
      [{ key: 'content-type', value: 'application/json' }],
    );
    assert.deepEqual(r.dynamic_metadata.fields.apx_rule, { stringValue: 'writes-need-scope' });
    assert.deepEqual(r.dynamic_metadata.fields.apx_outcome, { stringValue: 'deny' });
  });

  it('rate limit: 429 with Retry-After', () => {
    const answer = checkAnswerFor(deny(429, { headers: { 'retry-after': '3' }, rule: null }));
    assert.ok(answer.ok);
    assert.equal(answer.response.denied_response?.status.code, 429);
    assert.deepEqual(
      answer.response.denied_response?.headers.map((h) => h.header),
      [
        { key: 'retry-after', value: '3' },
        { key: 'content-type', value: 'application/json' },
      ],
    );
  });

  it('a status Envoy does not define is sent as 403, still a denial', () => {
    const answer = checkAnswerFor(deny(499), { httpStatusDefined: (s) => s !== 499 });
    assert.ok(answer.ok);
    assert.equal(answer.response.status.code, GrpcCode.PERMISSION_DENIED);
    assert.equal(answer.response.denied_response?.status.code, 403);
  });

  it('no decision: a gRPC error, never OK (policy not loaded: UNAVAILABLE; unknown: NOT_FOUND; else INTERNAL)', () => {
    assert.deepEqual(checkAnswerFor(failure(503, 'policy pb-x is not loaded yet')), {
      ok: false,
      code: GrpcCode.UNAVAILABLE,
      details: 'policy pb-x is not loaded yet',
      decisionId: 'd-3',
    });
    assert.equal((checkAnswerFor(failure(404, 'unknown policy pb-y')) as { code: number }).code, GrpcCode.NOT_FOUND);
    assert.equal((checkAnswerFor(failure(400, 'several policies')) as { code: number }).code, GrpcCode.INVALID_ARGUMENT);
    const internal = checkAnswerFor({ ...failure(500, ''), body: 'not json' });
    assert.deepEqual([internal.ok, (internal as { code: number }).code], [false, GrpcCode.INTERNAL]);
  });
});

// The pipeline's outcomes as the real decision service gives them; toGatewayDecision (the
// real one) shapes them, as for the HTTP gateways.
const LOADED = { refText: 'pb-pay-v1@1.0.0', artifact: { digest: 'sha256:ab12' } } as unknown as LoadedPolicy;
const MUTATIONS = {
  request: { set: { 'X-Policy-Version': '1.0.0' }, remove: ['X-Debug'] },
  response: { set: { 'Cache-Control': 'no-store' }, remove: [] },
} as unknown as NonNullable<PolicyDecision['headers']>;
const decision = (extra: Partial<PolicyDecision> = {}): PolicyDecision => ({
  allow: true,
  status: 200,
  reason: 'allowed',
  rateLimits: [],
  json: '{}',
  rule: null,
  headers: MUTATIONS,
  ...extra,
});
const decided = (extra: Partial<PolicyDecision> = {}): DecisionOutcome => ({
  kind: 'decided',
  policyId: 'pb-pay-v1',
  loaded: LOADED,
  decision: decision(extra),
  dryRun: false,
  decisionId: 'd-1',
});
const rateLimited = (retryAfter: number): DecisionOutcome => ({
  kind: 'rate_limited',
  policyId: 'pb-pay-v1',
  loaded: LOADED,
  decision: decision(),
  limit: 'per-tenant',
  retryAfter,
  dryRun: false,
});
const refused = (status: number, error: string): DecisionOutcome => ({ kind: 'refused', status, error, decisionId: 'd-3' });

/** A decision service that answers `next` and records what it was asked. */
class ScriptedDecisions implements DecisionService {
  asked: Array<{ policy: unknown; request: unknown }> = [];
  next: DecisionOutcome | ((done: (o: DecisionOutcome) => void) => void) | Error = decided();
  evaluate(policy: unknown, request: unknown, done: (o: DecisionOutcome) => void): void {
    this.asked.push({ policy, request });
    const next = this.next;
    if (next instanceof Error) throw next;
    if (typeof next === 'function') next(done);
    else done(next);
  }
  decide(): void {
    throw new Error('ext_authz asks evaluate(), to tell refusals apart');
  }
}

describe('ext_authz over gRPC (grpc-js client, Envoy protos)', () => {
  const decisions = new ScriptedDecisions();
  const internalErrors: Error[] = [];
  let server: ExtAuthzServer;
  let client: Awaited<ReturnType<typeof extAuthzClient>>;
  before(async () => {
    server = await startExtAuthzServer({
      host: '127.0.0.1',
      port: 0,
      decisions,
      defaultPolicy: 'pb-default',
      onInternalError: (e) => internalErrors.push(e),
    });
    client = await extAuthzClient(server.address);
  });
  after(async () => {
    client.close();
    await server.close();
  });
  const request = checkRequest({
    method: 'GET',
    host: 'api.example.com',
    path: '/v1/payments/p1?x=1',
    headers: { 'x-api-key': 'demo' },
    ip: '198.51.100.4',
    policy: 'pb-pay-v1',
    body: '{"amount":1}',
  });

  it('allow: the decoded request reached the decision service; OK with header mutations on the wire', async () => {
    decisions.next = decided();
    const r = await client.check(request);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(decisions.asked.at(-1), {
      policy: 'pb-pay-v1',
      request: {
        method: 'GET',
        host: 'api.example.com',
        path: '/v1/payments/p1?x=1',
        headers: { 'x-api-key': 'demo' },
        ip: '198.51.100.4',
        bodySize: 12,
      },
    });
    const response = r.response as {
      status: { code: number };
      ok_response: { headers: Array<{ header: unknown; append_action: string }>; headers_to_remove: string[] };
      dynamic_metadata: { fields: Record<string, { stringValue?: string }> };
      http_response: string;
    };
    assert.equal(response.status.code, 0);
    assert.equal(response.http_response, 'ok_response');
    assert.deepEqual(response.ok_response.headers[0]?.header, { key: 'x-policy-version', value: '1.0.0' });
    assert.equal(response.ok_response.headers[0]?.append_action, 'OVERWRITE_IF_EXISTS_OR_ADD');
    assert.deepEqual(response.ok_response.headers_to_remove, ['x-debug']);
    assert.equal(response.dynamic_metadata.fields.apx_decision_id?.stringValue, 'd-1');
  });

  it('deny: PERMISSION_DENIED with the HTTP status as Envoy names it, and the body', async () => {
    decisions.next = rateLimited(2);
    const r = await client.check(request);
    assert.ok(r.ok);
    const response = r.response as {
      status: { code: number };
      denied_response: { status: { code: string }; body: string; headers: Array<{ header: { key: string; value: string } }> };
    };
    assert.equal(response.status.code, GrpcCode.PERMISSION_DENIED);
    assert.equal(response.denied_response.status.code, 'TooManyRequests');
    assert.match(response.denied_response.body, /"status":429/);
    assert.deepEqual(response.denied_response.headers[0]?.header, { key: 'retry-after', value: '2' });
  });

  it('an answer that comes later (a token being verified) is sent when it comes', async () => {
    decisions.next = (done) => setTimeout(() => done(decided({ allow: false, status: 401, reason: 'credentials required' })), 20);
    const r = await client.check(request);
    assert.ok(r.ok);
    assert.equal((r.response as { denied_response: { status: { code: string } } }).denied_response.status.code, 'Unauthorized');
  });

  it('no decision: the gRPC error status and the decision id in the trailers', async () => {
    decisions.next = refused(503, 'policy pb-pay-v1 is not loaded yet');
    const r = await client.check(request);
    assert.deepEqual(r.ok ? r : { code: r.code, details: r.details, id: r.metadata['apx-decision-id'] }, {
      code: GrpcCode.UNAVAILABLE,
      details: 'policy pb-pay-v1 is not loaded yet',
      id: 'd-3',
    });
    decisions.next = refused(404, 'unknown policy pb-nope');
    const unknown = await client.check(request);
    assert.deepEqual(unknown.ok ? unknown : [unknown.code, unknown.details], [GrpcCode.NOT_FOUND, 'unknown policy pb-nope']);
  });

  it('a route without apx_policy is decided by the default policy', async () => {
    decisions.next = decided();
    const { attributes } = request as { attributes: Record<string, unknown> };
    const r = await client.check({ attributes: { ...attributes, context_extensions: {} } });
    assert.ok(r.ok);
    assert.equal(decisions.asked.at(-1)?.policy, 'pb-default');
  });

  it('a CheckRequest without HTTP attributes is INVALID_ARGUMENT; a failing decision service is INTERNAL', async () => {
    const invalid = await client.check({ attributes: {} });
    assert.deepEqual(invalid.ok ? invalid : invalid.code, GrpcCode.INVALID_ARGUMENT);
    decisions.next = new Error('boom');
    const broken = await client.check(request);
    assert.deepEqual(broken.ok ? broken : [broken.code, broken.details], [
      GrpcCode.INTERNAL,
      'authorization failed inside the APX worker',
    ]);
    assert.equal(internalErrors.at(-1)?.message, 'boom');
  });

  it('close() lets a call in flight finish', async () => {
    const own = await startExtAuthzServer({ host: '127.0.0.1', port: 0, decisions });
    const c = await extAuthzClient(own.address);
    try {
      // The decision is held until close() has begun: the call is in flight by construction,
      // not by a sleep that a loaded machine can outrun.
      let release: () => void = () => undefined;
      const arrived = new Promise<void>((resolve) => {
        decisions.next = (done) => {
          release = () => done(decided());
          resolve();
        };
      });
      const pending = c.check(request);
      await arrived;
      const closed = own.close(5000);
      setImmediate(release);
      const r = await pending;
      assert.ok(r.ok);
      await closed;
      const refused = await c.check(request, 2000);
      assert.equal(refused.ok, false);
    } finally {
      c.close();
    }
  });

  it('a port in use is one clear error naming the setting', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(
        startExtAuthzServer({ host: '127.0.0.1', port, decisions, settings: { host: 'APX_HOST', port: 'APX_GRPC_PORT' } }),
        (err: Error & { hint?: string }) => {
          assert.equal(err.message, `cannot listen on 127.0.0.1:${port}: the port is already in use`);
          assert.match(err.hint ?? '', /APX_GRPC_PORT/);
          return true;
        },
      );
    } finally {
      blocker.close();
    }
  });
});
