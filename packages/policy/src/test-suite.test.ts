import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyDecision } from '@apx/core';
import { compareDecision, parseTestSuite, TestFileError } from './test-suite.js';

const decision: PolicyDecision = {
  effect: 'allow',
  status: 200,
  reason: 'allowed by default',
  route: 'payments',
  rule: null,
  identity: { kind: 'apiKey', id: 'k1', tenant: 'acme', plan: 'pro' },
  headers: { request: { set: { 'X-A': '1', 'X-B': '2' }, remove: ['Cookie'] }, response: { set: {}, remove: [] } },
  rateLimits: [
    { name: 'per-tenant', key: 'identity.tenant', value: 'acme', limit: 10, windowSeconds: 1, burst: 20 },
    { name: 'per-ip', key: 'request.ip', value: '192.0.2.1', limit: 5, windowSeconds: 60, burst: 5 },
  ],
};

function suiteError(text: string): string {
  try {
    parseTestSuite(text, 't.test.yaml');
  } catch (err) {
    assert.ok(err instanceof TestFileError, String(err));
    return err.message;
  }
  assert.fail('expected a TestFileError');
}

describe('policy test files', () => {
  it('merges defaults.request under each case (headers merged, names case-insensitive)', () => {
    const suite = parseTestSuite(
      [
        'policy: ../p.yaml',
        'defaults: { request: { host: api.example.com, headers: { X-Env: test, X-Key: a } } }',
        'cases:',
        '  - name: one',
        '    request: { method: GET, path: /x, headers: { x-key: b } }',
        '    expect: { allow: true }',
      ].join('\n'),
      't.test.yaml',
    );
    assert.equal(suite.policy, '../p.yaml');
    assert.deepEqual(suite.cases[0]?.request, {
      method: 'GET',
      host: 'api.example.com',
      path: '/x',
      headers: { 'x-env': 'test', 'x-key': 'b' },
    });
    assert.equal(suite.cases[0]?.line, 4);
  });

  it('names file, line, column, case and field of the first problem', () => {
    const head = 'cases:\n  - name: c\n    request: { method: GET, host: h, path: / }\n';
    assert.equal(
      suiteError(`${head}    expect: { allow: true, effect: deny }\n`),
      't.test.yaml:4:36 case "c": expect.effect: contradicts allow: true; give one of them',
    );
    assert.equal(
      suiteError(`${head}    expect: { identity: { tenent: a } }\n`),
      `t.test.yaml:4:27 case "c": expect.identity.tenent: unknown field (did you mean 'tenant'?); expected kind, id, tenant, plan`,
    );
    assert.equal(
      suiteError(`${head}    expect: { rateLimits: [{ name: a, limit: "5" }] }\n`),
      't.test.yaml:4:46 case "c": expect.rateLimits[0].limit: expected an integer',
    );
    assert.equal(
      suiteError('cases:\n  - name: c\n    request: { method: GET, path: / }\n    expect: { allow: true }\n'),
      't.test.yaml:3:14 case "c": request: missing \'host\'',
    );
    assert.equal(
      suiteError(
        'cases:\n  - name: c\n    request: { method: GET, host: h, path: /, headers: { X-Depth: 3 } }\n    expect: { allow: true }\n',
      ),
      't.test.yaml:3:67 case "c": request.headers.X-Depth: header \'X-Depth\' must be a string (write "3")',
    );
    assert.match(suiteError('cases: []\n'), /^t\.test\.yaml:1:8 cases: expected a non-empty list/);
    assert.match(suiteError('a: &x 1\nb: *x\n'), /^t\.test\.yaml:2:4 YAML aliases are not allowed/);
  });

  it('checks only the fields given; mappings by their keys, lists entry by entry and by length', () => {
    assert.deepEqual(compareDecision({ allow: true, route: 'payments', rule: null, identity: { id: 'k1' } }, decision), []);
    assert.deepEqual(compareDecision({ headers: { request: { set: { 'X-A': '1' } } } }, decision), []);
    assert.deepEqual(compareDecision({ rateLimits: ['per-tenant', { name: 'per-ip', windowSeconds: 60 }] }, decision), []);
    assert.deepEqual(compareDecision({ effect: 'deny', status: 403, identity: { plan: 'free' } }, decision), [
      { field: 'effect', expected: 'deny', actual: 'allow' },
      { field: 'status', expected: 403, actual: 200 },
      { field: 'identity.plan', expected: 'free', actual: 'pro' },
    ]);
    assert.deepEqual(compareDecision({ allow: false, rule: 'r' }, decision), [
      { field: 'allow', expected: false, actual: true },
      { field: 'rule', expected: 'r', actual: null },
    ]);
    assert.deepEqual(compareDecision({ rateLimits: ['per-tenant'] }, decision), [
      { field: 'rateLimits', expected: [{ name: 'per-tenant' }], actual: decision.rateLimits },
    ]);
    assert.deepEqual(compareDecision({ rateLimits: [{ name: 'per-tenant', value: 'globex' }, 'per-ip'] }, decision), [
      { field: 'rateLimits[0].value', expected: 'globex', actual: 'acme' },
    ]);
    assert.deepEqual(compareDecision({ headers: { request: { remove: [] } } }, decision), [
      { field: 'headers.request.remove', expected: [], actual: ['Cookie'] },
    ]);
  });
});
