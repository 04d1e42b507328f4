import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { CoreErrorCode } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { policyModule, signatureFile } from '../testing/policy-module.js';
import { keysTrust } from '../verify/input.js';
import { verifyPolicyArtifact } from '../verify/verify-policy-artifact.js';
import { adoptHandedArtifact, type HandedArtifact, handedVerdict } from './handed-artifact.js';
import { isVerifiedArtifact } from './verified-artifact.js';

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const REF = { policyId: 'pb-pay-v1', version: '1.0.0' };
const BYTES = policyModule('pb-pay-v1', '1.0.0');

/** What a verifying process hands on: bytes that passed verifyPolicyArtifact, and its verdict. */
function handed(bytes: Uint8Array = BYTES): HandedArtifact {
  const verified = verifyPolicyArtifact({
    material: { ref: REF, artifact: BYTES, signature: signatureFile(BYTES, signer.privateKey) },
    trust: keysTrust(new SignatureVerifier(PublicKey.fromKeyObject(signer.publicKey))),
    policy: { environment: 'dev', strict: true, requireBinding: false },
  });
  // Across a process boundary: a structured clone, as the IPC channel delivers it.
  return structuredClone({ bytes, verdict: handedVerdict(verified) });
}

describe('adoptHandedArtifact (a serving process adopts what its verifying parent verified)', () => {
  it('makes a VerifiedArtifact with the verdict of the verifier and the tables of the bytes', () => {
    const h = handed();
    const adopted = adoptHandedArtifact(h);
    assert.ok(isVerifiedArtifact(adopted));
    assert.equal(adopted.digest, h.verdict.digest);
    assert.equal(adopted.keyId, h.verdict.keyId);
    assert.equal(adopted.trust, 'keys');
    assert.deepEqual(adopted.ref, REF);
    assert.equal(adopted.meta.policy, 'pb-pay-v1');
    assert.ok(Object.isFrozen(adopted));
  });

  it('refuses bytes other than those verified (one byte changed, or other bytes of the same size)', () => {
    const changed = Buffer.from(BYTES);
    changed.writeUInt8((changed.at(-1) as number) ^ 1, changed.length - 1);
    for (const bytes of [changed, policyModule('pb-pay-v1', '1.0.1').subarray(0, BYTES.length)]) {
      assert.throws(
        () => adoptHandedArtifact({ ...handed(), bytes }),
        (err: { code?: string; message: string }) =>
          err.code === CoreErrorCode.ARTIFACT_NOT_VERIFIED && err.message.includes('the bytes are sha256:'),
      );
    }
  });

  it('refuses a verdict about another size, and bytes that name another policy than the verdict', () => {
    const h = handed();
    assert.throws(() => adoptHandedArtifact({ ...h, verdict: { ...h.verdict, size: h.verdict.size + 1 } }), /bytes, verified/);
    const other = policyModule('pb-other', '1.0.0');
    const { digest } = handedVerdict(
      verifyPolicyArtifact({
        material: { ref: { policyId: 'pb-other', version: '1.0.0' }, artifact: other },
        trust: keysTrust(new SignatureVerifier(PublicKey.fromKeyObject(signer.publicKey))),
        policy: { environment: 'dev', strict: false, requireBinding: false },
      }),
    );
    assert.throws(
      () => adoptHandedArtifact({ bytes: other, verdict: { ...h.verdict, digest, size: other.length } }),
      /the module says pb-other@1\.0\.0/,
    );
  });
});
