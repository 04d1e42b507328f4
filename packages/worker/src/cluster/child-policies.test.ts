import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ArtifactRef, formatArtifactRef, verifyPolicyArtifact } from '@apx/core';
import { handedVerdict } from '@apx/core/handoff';
import { policyModule } from '@apx/core/testing';
import type { PolicyRuntime, RuntimeFactory } from '../runtime.js';
import { ChildPolicies } from './child-policies.js';
import type { HandedPolicy, HandedSet } from './protocol.js';

/** What the primary hands for one reference: bytes that verified (unsigned, dev) and the verdict. */
function handed(ref: ArtifactRef, withBytes = true): HandedPolicy {
  const bytes = policyModule(ref.policyId, ref.version);
  const verified = verifyPolicyArtifact({
    material: { ref, artifact: bytes },
    trust: { kind: 'keys', signers: [] },
    policy: { environment: 'dev', strict: false, requireBinding: false },
  });
  const verdict = handedVerdict(verified);
  return {
    policyId: ref.policyId,
    current: { refText: formatArtifactRef(ref), handed: withBytes ? { bytes, verdict } : { verdict } },
    refused: false,
    lastError: undefined,
  };
}

function set(generation: number, policies: HandedPolicy[], ready = true): HandedSet {
  return { generation, discovering: false, readiness: ready ? { ready } : { ready, reason: 'waiting' }, policies };
}

const V1 = { policyId: 'pb-pay-v1', version: '1.0.0' };
const V2 = { policyId: 'pb-pay-v1', version: '1.1.0' };

function runtimes(): { factory: RuntimeFactory; made: string[] } {
  const made: string[] = [];
  return {
    made,
    factory: (artifact) => {
      made.push(artifact.digest);
      const runtime: PolicyRuntime = { decide: () => assert.fail('not decided here') };
      return runtime;
    },
  };
}

describe('ChildPolicies (the set a serving child serves)', () => {
  it('is not ready and serves nothing before its first commit', () => {
    const p = new ChildPolicies(runtimes().factory);
    assert.equal(p.readiness().ready, false);
    assert.equal(p.get('pb-pay-v1'), undefined);
    p.prepare(set(1, [handed(V1)]));
    assert.equal(p.get('pb-pay-v1'), undefined, 'prepared is not serving');
    p.commit(1);
    assert.equal(p.get('pb-pay-v1')?.refText, 'pb-pay-v1@1.0.0');
    assert.equal(p.readiness().ready, true);
  });

  it('keeps the instantiated version of a digest it holds (no bytes needed), instantiates only new ones, swaps at commit', () => {
    const { factory, made } = runtimes();
    const p = new ChildPolicies(factory);
    p.prepare(set(1, [handed(V1)]));
    p.commit(1);
    const first = p.get('pb-pay-v1');
    p.prepare(set(2, [handed(V1, false)], false));
    p.commit(2);
    assert.equal(p.get('pb-pay-v1'), first, 'the same LoadedPolicy');
    p.prepare(set(3, [handed(V2)]));
    assert.equal(p.get('pb-pay-v1'), first, 'still 1.0.0 until the commit');
    p.commit(3);
    assert.equal(p.get('pb-pay-v1')?.refText, 'pb-pay-v1@1.1.0');
    assert.equal(made.length, 2);
  });

  it('fails closed: bytes other than verified, a digest it lacks without bytes, a commit of another generation, an update that changes what serves', () => {
    const p = new ChildPolicies(runtimes().factory);
    p.prepare(set(1, [handed(V1)]));
    p.commit(1);
    const other = handed(V2);
    const swapped: HandedPolicy = {
      ...other,
      current: {
        refText: 'pb-pay-v1@1.1.0',
        handed: { bytes: policyModule('pb-pay-v1', '1.0.0'), verdict: other.current?.handed.verdict as never },
      },
    };
    assert.throws(() => p.prepare(set(2, [swapped])), /refusing the artifact handed for pb-pay-v1@1\.1\.0/);
    assert.throws(() => p.prepare(set(2, [handed(V2, false)])), /the primary sent no bytes/);
    p.prepare(set(2, [handed(V2)]));
    assert.throws(() => p.commit(3), /commit of generation 3, but 2 is prepared/);
    assert.throws(() => p.update(set(4, [handed(V2)])), /changes what serves/);
    assert.equal(p.get('pb-pay-v1')?.refText, 'pb-pay-v1@1.0.0', 'what served still serves');
  });
});
