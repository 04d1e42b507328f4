import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyHost } from '@apx/core';
import fc from 'fast-check';
import { compilePolicy } from './compiler.js';
import { ReferenceEvaluator } from './reference/evaluator.js';
import { signAndVerify } from './testing/artifacts.js';

// Address prefixes of every shape the inline prefix test must get right: not a multiple of 8,
// across the two 64-bit halves of an IPv6 address, the whole address, and none of it.
const DENY = ['10.8.0.0/15', '172.16.0.0/12', '192.0.2.128/25', '198.51.100.7/32', '128.0.0.0/1'];
const DENY6 = ['fe80::/10', '2001:db8:bac::/47', '2001:db8:0:ff00::/57', '2001:db8::2:0:0/95', '::1/128', '2001:db8:1::8/127'];

const policy = (list: string) => `apiVersion: apx/v1
kind: PolicyBundle
metadata: { name: cidrs, version: 0.0.1 }
spec:
  routes:
    - name: all
      match: { hosts: [a.example.com], paths: ["/**"] }
      auth: none
  ip: { ${list} }
  default: allow
`;

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).chain((g) =>
  fc.constantFrom(
    g.map((x) => x.toString(16)).join(':'),
    `2001:db8:${g
      .slice(2)
      .map((x) => x.toString(16))
      .join(':')}`,
    `fe${(0x80 + ((g[0] as number) & 0x7f)).toString(16)}::${(g[7] as number).toString(16)}`,
    '::1',
    '::2',
    '2001:db8:1::9',
    '2001:db8:bac::1',
  ),
);
const near = fc.constantFrom(
  '10.8.255.255',
  '10.10.0.1',
  '10.11.255.255',
  '192.0.2.127',
  '192.0.2.128',
  '198.51.100.6',
  '::ffff:10.9.1.1',
);

describe('address prefixes compile to the meaning the reference gives them', () => {
  for (const [name, list] of [
    ['deny', `deny: [${[...DENY, ...DENY6].map((c) => `"${c}"`).join(', ')}]`],
    ['allow', `allow: [${[...DENY, ...DENY6].map((c) => `"${c}"`).join(', ')}]`],
    ['allow everything IPv4', 'allow: ["0.0.0.0/0"]'],
  ] as const) {
    it(`${name}: 2,000 addresses, zero mismatches`, async () => {
      const compiled = await compilePolicy(policy(list), 'cidrs.yaml');
      const host = PolicyHost.load(signAndVerify(compiled.wasm));
      const reference = new ReferenceEvaluator(compiled.policy);
      const outcomes = new Set<string>();
      fc.assert(
        fc.property(fc.oneof(v4, v6, near), (ip) => {
          const req = { method: 'GET', host: 'a.example.com', path: '/x', ip };
          const got = host.decide(req);
          assert.deepEqual(got, reference.decide(req), ip);
          outcomes.add(got.reason);
        }),
        { numRuns: 2000, seed: 7 },
      );
      assert.ok(outcomes.size >= 2, [...outcomes].join('; '));
    });
  }
});
