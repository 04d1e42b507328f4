import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkBinding, parseBundle, readBinding, SignatureVerifier, verifyBundle } from '@apx/core';
import { signArtifact } from './artifact.js';
import { FileSigner } from './signer/file-signer.js';
import { sigstoreVerify } from './testing/sigstore.js';

const artifact = Buffer.from('\0asm\x01\0\0\0 payments policy');
const claims = {
  policyId: 'pb-pay-v1',
  version: '1.0.0',
  environment: 'production',
  abiVersion: 1,
  compilerVersion: '0.1.0',
  sourceDigest: null,
};

describe('signArtifact: signed binding of name, version and environment', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = new FileSigner('test', privateKey);
  const signed = await signArtifact(signer, artifact, claims, new Date('2026-11-24T12:00:00Z'));
  const verifier = new SignatureVerifier(await signer.publicKey());

  it('keeps a cosign detached signature over the bytes', () => {
    verifier.verify(artifact, Buffer.from(signed.signatureFileContent));
  });

  it('binds the artifact to its reference, environment and size in a DSSE statement', () => {
    const result = verifyBundle(parseBundle(signed.bundleJson), artifact, verifier);
    const binding = readBinding(result.statement ?? {});
    assert.deepEqual(binding, { ...claims, size: artifact.length, signedAt: '2026-11-24T12:00:00.000Z' });
    checkBinding(binding, { policyId: 'pb-pay-v1', version: '1.0.0', environment: 'production', size: artifact.length });
  });

  it('refuses the same artifact loaded under another name, version or environment', () => {
    const binding = readBinding(verifyBundle(parseBundle(signed.bundleJson), artifact, verifier).statement ?? {});
    const expect = { policyId: 'pb-pay-v1', version: '1.0.0', environment: 'production', size: artifact.length };
    assert.throws(() => checkBinding(binding, { ...expect, version: '1.1.0' }), {
      code: 'BINDING_MISMATCH',
      message: 'signed binding mismatch: artifact is signed as pb-pay-v1@1.0.0, loaded as pb-pay-v1@1.1.0',
    });
    assert.throws(() => checkBinding(binding, { ...expect, policyId: 'pb-admin' }), { code: 'BINDING_MISMATCH' });
    assert.throws(() => checkBinding(binding, { ...expect, environment: 'staging' }), {
      message: 'signed binding mismatch: artifact is signed for environment production, this worker runs staging',
    });
  });

  it('refuses the bundle for other bytes', () => {
    assert.throws(() => verifyBundle(parseBundle(signed.bundleJson), Buffer.from('other'), verifier), {
      code: 'BUNDLE_DIGEST_MISMATCH',
    });
  });

  it('writes a v0.3 DSSE bundle that @sigstore/verify accepts with the public key', () => {
    const json = JSON.parse(signed.bundleJson);
    assert.equal(json.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.equal(json.dsseEnvelope.payloadType, 'application/vnd.in-toto+json');
    sigstoreVerify(signed.bundleJson, verifier.publicKey);
  });
});
