import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicy } from './compiler.js';
import { PolicyError, type Problem } from './error.js';

const VALID = `apiVersion: apx/v1
kind: PolicyBundle
metadata: { name: t, version: 1.0.0 }
spec:
  routes:
    - name: r
      match: { paths: ["/x/**"] }
  rules:
    - name: one
      when: 'request.method == "GET"'
      effect: deny
`;

function problems(text: string): Problem[] {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return [...err.problems];
  }
  assert.fail('expected problems');
}

function lines(text: string): string[] {
  try {
    parsePolicy(text, 'configs/x.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.lines();
  }
  return [];
}

describe('policy validation', () => {
  it('accepts a minimal policy with safe defaults', () => {
    const p = parsePolicy(VALID, 'p.yaml');
    assert.equal(p.defaultEffect, 'deny');
    assert.equal(p.routes[0]?.auth, 'none');
    assert.deepEqual([p.rules[0]?.status, p.rules[0]?.reason], [403, 'denied by rule one']);
  });

  it('reports every problem at once, each with file:line:column, path and code', () => {
    const text = VALID.replace('version: 1.0.0', 'version: one')
      .replace('effect: deny', 'effect: deny\n      colour: red')
      .replace('when: \'request.method == "GET"\'', 'when: \'requst.method == "GET"\'');
    assert.deepEqual(lines(text), [
      "configs/x.yaml:3:31 metadata.version: invalid value 'one': expected a semantic version such as 1.0.0",
      "configs/x.yaml:10:14 spec.rules[0].when: unknown identifier 'requst' (did you mean 'request'?)",
      "configs/x.yaml:12:7 spec.rules[0].colour: unknown field 'colour'",
    ]);
    assert.deepEqual(
      problems(text).map((p) => p.code),
      ['SCHEMA_VALUE', 'CEL_UNKNOWN_IDENTIFIER', 'SCHEMA_UNKNOWN_FIELD'],
    );
  });

  it('refuses duplicate keys, aliases and several documents', () => {
    assert.equal(
      problems(VALID.replace('kind: PolicyBundle', 'kind: PolicyBundle\nkind: PolicyBundle'))[0]?.code,
      'YAML_DUPLICATE_KEY',
    );
    const alias = VALID.replace('metadata: { name: t, version: 1.0.0 }', 'metadata: &m { name: t, version: 1.0.0 }\nx: *m');
    assert.ok(problems(alias).some((p) => p.code === 'YAML_ALIAS'));
    assert.equal(problems(`${VALID}---\n${VALID}`)[0]?.code, 'YAML_MULTIPLE_DOCUMENTS');
    assert.equal(problems(`# ${'x'.repeat(1024 * 1024)}\n${VALID}`)[0]?.code, 'SOURCE_TOO_LARGE');
  });

  it('points at the character of a CEL problem inside a quoted condition', () => {
    const [p] = problems(VALID.replace('request.method == "GET"', 'request.method == "GET" && identity.plann == "x"'));
    assert.deepEqual([p?.line, p?.column, p?.message], [10, 50, "unknown field 'plann' of identity (did you mean 'plan'?)"]);
  });

  const unsupported: [string, RegExp][] = [
    ['request.bodySize > 1 ? true : false', /conditional operator/],
    ['has(request.headers.x)', /has\(\) is not supported/],
    ['request.bodySize > 1.5', /doubleValue literals are not supported/],
    ['request.path.matches("a.*")', /method 'matches' is not supported/],
    ['request.path < "b"', /< is supported on ints only/],
    ['request.headers["X-Up"] == "a"', /header names are lowercase: use 'x-up'/],
    ['request.path + "x" == "y"', /'\+' is not supported/],
    ['request.path', /expected bool, found string/],
    ['request.bodySize == "1"', /cannot compare int with string/],
    ['request.path ==', /syntax error/],
  ];
  for (const [expr, message] of unsupported) {
    it(`rejects at compile time: ${expr}`, () => {
      const [p] = problems(VALID.replace('request.method == "GET"', expr.replace(/'/g, "''")));
      assert.match(p?.message ?? '', message);
      assert.equal(p?.path, 'spec.rules[0].when');
    });
  }

  it('refuses a route that requires authentication when none is configured', () => {
    const [p] = problems(VALID.replace('match: { paths: ["/x/**"] }', 'match: { paths: ["/x/**"] }\n      auth: required'));
    assert.equal(p?.message, 'auth: required needs spec.auth.apiKeys or spec.auth.jwt');
  });

  it('checks names, references, CIDRs, patterns and ranges', () => {
    const text = VALID.replace('paths: ["/x/**"]', 'paths: ["/x/**", "x", "/a*"], methods: [get]')
      .replace('effect: deny', 'effect: deny\n      status: 200\n      routes: [nowhere]')
      .replace(
        'spec:\n',
        'spec:\n  ip: { allow: ["10.0.0.1/8", "::1/129", "1.2.3.4"] }\n  rateLimits: [{ name: a, key: identity.plan, rps: 1 }]\n',
      );
    const msgs = problems(text).map((p) => `${p.path}: ${p.message}`);
    for (const expected of [
      "spec.ip.allow[0]: invalid CIDR '10.0.0.1/8': host bits are set",
      "spec.ip.allow[1]: invalid CIDR '::1/129': prefix length must be 0..128",
      "spec.rateLimits[0].key: invalid value 'identity.plan': expected one of identity.tenant, identity.id, request.ip (did you mean 'identity.tenant'?)",
      "spec.routes[0].match.paths[1]: invalid path pattern 'x': must start with /",
      "spec.routes[0].match.paths[2]: invalid path pattern '/a*': * must be a whole segment",
      "spec.routes[0].match.methods[0]: invalid value 'get': expected an uppercase HTTP method such as GET",
      'spec.rules[0].status: 200 is out of range 400..599',
      "spec.rules[0].routes[0]: unknown route 'nowhere'",
    ]) {
      assert.ok(msgs.includes(expected), `missing: ${expected}\n got: ${msgs.join('\n')}`);
    }
  });
});
