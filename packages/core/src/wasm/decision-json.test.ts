import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANONYMOUS, NO_HEADER_MUTATIONS, type PolicyDecision } from './decision.js';
import { decisionJson } from './decision-json.js';

const allow: PolicyDecision = {
  effect: 'allow',
  status: 200,
  reason: 'allowed "by" default',
  route: 'payments',
  rule: null,
  identity: Object.freeze({ kind: 'apiKey' as const, id: 'acme', tenant: 'acme', plan: 'pro' }),
  headers: NO_HEADER_MUTATIONS,
  rateLimits: [{ name: 'per-tenant', key: 'identity.tenant', value: 'acme', limit: 200, windowSeconds: 1, burst: 400 }],
};

describe('decisionJson', () => {
  it('is the decision with "allow" last, as JSON.stringify would write it', () => {
    assert.equal(decisionJson(allow), JSON.stringify({ ...allow, allow: true }));
    const deny: PolicyDecision = {
      ...allow,
      effect: 'deny',
      status: 401,
      reason: 'invalid API key',
      identity: ANONYMOUS,
      rateLimits: [],
    };
    assert.deepEqual(JSON.parse(decisionJson(deny)), { ...deny, allow: false });
  });

  it('puts the members a caller adds inside the object', () => {
    const text = decisionJson(allow, ',"policy":"pb-pay-v1@1.0.0","digest":"sha256:00"');
    assert.deepEqual(JSON.parse(text), { ...allow, allow: true, policy: 'pb-pay-v1@1.0.0', digest: 'sha256:00' });
  });

  it('serializes an unfrozen decision again after it changed (only frozen ones are kept)', () => {
    const frozen = Object.freeze({ ...allow, rateLimits: Object.freeze([]) });
    assert.equal(decisionJson(frozen), decisionJson(frozen));
    assert.equal(JSON.parse(decisionJson(frozen)).rateLimits.length, 0);
    const open: { -readonly [K in keyof PolicyDecision]: PolicyDecision[K] } = { ...allow };
    decisionJson(open);
    open.status = 202;
    assert.equal(JSON.parse(decisionJson(open)).status, 202);
  });
});
