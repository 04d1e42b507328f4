import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseBundle, SignatureVerifier, verifyBundle } from '@apx/core';
import { signBlob } from './blob.js';
import { FileSigner } from './signer/file-signer.js';
import { sigstoreVerify } from './testing/sigstore.js';

const blob = Buffer.from('\0asm\x01\0\0\0 a policy');

describe('signBlob', () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = new FileSigner('test-key', privateKey);

  it('writes base64 DER with no newline, and an offline v0.3 bundle with the key id as hint', async () => {
    const out = await signBlob(signer, blob);
    assert.match(out.signatureFileContent, /^[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(Buffer.from(out.signatureFileContent, 'base64'), out.signature);
    const json = JSON.parse(out.bundleJson);
    assert.equal(json.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.equal(json.verificationMaterial.publicKey.hint, out.publicKey.keyId);
    assert.equal(json.verificationMaterial.tlogEntries, undefined);
    assert.equal(json.messageSignature.messageDigest.algorithm, 'SHA2_256');
    const verifier = new SignatureVerifier(out.publicKey);
    verifier.verify(blob, Buffer.from(out.signatureFileContent));
    verifyBundle(parseBundle(out.bundleJson), blob, verifier);
  });

  it('produces bundles that @sigstore/verify accepts given the public key (independent verifier)', async () => {
    const out = await signBlob(signer, blob);
    sigstoreVerify(out.bundleJson, out.publicKey, blob);
    const tampered = Buffer.from(blob);
    tampered[0] = 1;
    assert.throws(() => sigstoreVerify(out.bundleJson, out.publicKey, tampered), { code: 'SIGNATURE_ERROR' });
  });

  it('signs P-384 keys with SHA-384 and records SHA2_384 in the bundle, as cosign 2.6+', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const out = await signBlob(new FileSigner('p384', p384.privateKey), blob);
    assert.equal(JSON.parse(out.bundleJson).messageSignature.messageDigest.algorithm, 'SHA2_384');
    verifyBundle(parseBundle(out.bundleJson), blob, new SignatureVerifier(out.publicKey));
  });
});
