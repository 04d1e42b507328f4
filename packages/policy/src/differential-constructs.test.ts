import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PolicyFault, PolicyHost } from '@apx/core';
import fc from 'fast-check';
import { compilePolicy } from './compiler.js';
import { ReferenceEvaluator } from './reference/evaluator.js';
import { signAndVerify } from './testing/artifacts.js';
import { requestArbitrary } from './testing/requests.js';

// Every construct of the CEL subset, each in a rule of its own, so that the differential test
// exercises all of the code generator and not only what the samples happen to use.
const CONDITIONS = [
  'request.headers["x-other"].contains("b") && request.method != "GET"',
  'request.headers["x-ticket-id"].endsWith("42") || request.path.endsWith("/x")',
  'request.host.contains("example") && request.bodySize >= 10 && request.bodySize < 1025',
  'size(identity.scopes) > 1 && size(identity.roles) <= 1',
  '(identity.plan == "pro") == ("read" in identity.scopes)',
  'identity.authenticated != true && request.ip.startsWith("10.")',
  'request.bodySize in [0, 500] && identity.kind in ["jwt", "apiKey"]',
  'identity.tenant == request.headers["x-search-depth"]',
  '!(request.headers["idempotency-key"] == "1") && "x-other" in request.headers',
  'request.bodySize > -1 && identity.id != "" && !(identity.tenant in [])',
  'request.path.contains("") && "" in identity.roles || request.method == "PATCH"',
  // Header names that are also Object.prototype properties must not leak through.
  '"constructor" in request.headers && request.headers["constructor"] == "1"',
];

const policy = (condition: string) => `apiVersion: apx/v1
kind: PolicyBundle
metadata: { name: constructs, version: 0.0.1 }
spec:
  routes:
    - name: all
      match: { hosts: [a.example.com, "*.example.org"], paths: ["/**"] }
      auth: optional
  auth:
    apiKeys: { keys: [{ id: k1, sha256: e99c53f5abcdd52fe1988787b71d6873c410098c897e0b9a644edbfa2e3a085b, tenant: "1", plan: pro, scopes: [read, write], roles: [x] }] }
    jwt: { issuer: https://issuer, jwksUri: "https://issuer/jwks" }
  ip: { deny: ["10.9.0.0/16", "fe80::/10"] }
  rules:
    - { name: r, when: '${condition.replace(/'/g, "''")}', effect: deny, status: 409 }
  default: allow
`;

describe('every CEL construct compiles to the meaning the CEL interpreter gives it', () => {
  for (const condition of CONDITIONS) {
    it(`${condition}: 1,000 generated requests, zero mismatches`, async () => {
      const compiled = await compilePolicy(policy(condition), 'constructs.yaml');
      const faults: PolicyFault[] = [];
      const host = PolicyHost.load(signAndVerify(compiled.wasm), { onFault: (f) => faults.push(f) });
      const reference = new ReferenceEvaluator(compiled.policy);
      const outcomes = new Set<string>();
      fc.assert(
        fc.property(requestArbitrary(compiled.policy, ['demo-acme-prod-key']), (req) => {
          const got = host.decide(req);
          assert.deepEqual(got, reference.decide(req), JSON.stringify(req));
          outcomes.add(got.reason);
        }),
        { numRuns: 1000, seed: 42 },
      );
      assert.deepEqual(faults, []);
      assert.ok(outcomes.has('allowed by default'), 'the condition was never false');
      assert.ok(outcomes.has('denied by rule r'), 'the condition was never true');
    });
  }
});
