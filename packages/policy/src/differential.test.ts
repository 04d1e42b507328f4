import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PolicyFault, PolicyHost } from '@apx/core';
import fc from 'fast-check';
import { ReferenceEvaluator } from './reference/evaluator.js';
import { compileSample, SAMPLES, signAndVerify } from './testing/artifacts.js';
import { requestArbitrary } from './testing/requests.js';

/** The raw keys behind the samples' hashes (see the comments in configs/samples). */
const DEMO_KEYS = ['demo-acme-prod-key', 'demo-globex-key', 'demo-admin-ci-key', 'demo-public-free-key', 'demo-public-pro-key'];
const RUNS = 10_000;

describe('compiled WebAssembly decides exactly as the reference evaluator', () => {
  for (const sample of SAMPLES) {
    it(`${sample}: ${RUNS} generated requests, zero mismatches`, async () => {
      const compiled = await compileSample(sample);
      const faults: PolicyFault[] = [];
      const host = PolicyHost.load(signAndVerify(compiled.wasm), { onFault: (f) => faults.push(f) });
      const reference = new ReferenceEvaluator(compiled.policy);
      const outcomes = new Map<string, number>();
      fc.assert(
        fc.property(requestArbitrary(compiled.policy, DEMO_KEYS), (req) => {
          const got = host.decide(req);
          const want = reference.decide(req);
          assert.deepEqual(got, want, JSON.stringify(req));
          const label = `${got.effect} ${got.status} ${got.reason}`;
          outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
        }),
        { numRuns: RUNS, seed: 0x5eed },
      );
      if (process.env.APX_SHOW_OUTCOMES) console.log(sample, Object.fromEntries(outcomes));
      assert.deepEqual(faults, []);
      // The generator must reach the interesting branches, not only "no matching route".
      assert.ok(outcomes.size >= 6, `too few distinct outcomes: ${[...outcomes.keys()].join('; ')}`);
      assert.ok(
        [...outcomes.keys()].some((k) => k.startsWith('allow')),
        'no request was allowed',
      );
    });
  }
});
