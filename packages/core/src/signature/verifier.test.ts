import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { CoreErrorCode } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { derEcdsaLength } from './encoding.js';
import { SignatureVerifier } from './verifier.js';

const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const message = Buffer.from('policy artifact bytes');

function toHighS(derSig: Buffer): Buffer {
  // SEQUENCE { INTEGER r, INTEGER s } → same r, s' = n - s (the other valid signature).
  const rLen = derSig[3] as number;
  const r = derSig.subarray(4, 4 + rLen);
  const sLen = derSig[5 + rLen] as number;
  const s = BigInt(`0x${derSig.subarray(6 + rLen, 6 + rLen + sLen).toString('hex')}`);
  let hex = (P256_N - s).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let sBytes = Buffer.from(hex, 'hex');
  if ((sBytes[0] as number) & 0x80) sBytes = Buffer.concat([Buffer.of(0), sBytes]);
  const body = Buffer.concat([Buffer.of(0x02, r.length), r, Buffer.of(0x02, sBytes.length), sBytes]);
  return Buffer.concat([Buffer.of(0x30, body.length), body]);
}

describe('SignatureVerifier', () => {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const verifier = new SignatureVerifier(PublicKey.fromKeyObject(p256.publicKey));
  const derSig = sign('sha256', message, p256.privateKey);

  it('accepts base64 DER, raw DER, high-S and P1363 forms of a P-256 signature', () => {
    verifier.verify(message, Buffer.from(derSig.toString('base64')));
    verifier.verify(message, derSig);
    const highS = toHighS(derSig);
    assert.equal(derEcdsaLength(highS), highS.length);
    verifier.verify(message, Buffer.from(highS.toString('base64')));
    verifier.verify(message, sign('sha256', message, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' }));
  });

  it('rejects a modified message with the runbook message and SIGNATURE_INVALID', () => {
    assert.throws(() => verifier.verify(Buffer.from('policy artifact byteS'), derSig), {
      code: CoreErrorCode.SIGNATURE_INVALID,
      message: 'signature verification failed: ECDSA signature verification failed',
    });
  });

  it('rejects a signature by another key', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.throws(() => verifier.verify(message, sign('sha256', message, other.privateKey)), {
      code: CoreErrorCode.SIGNATURE_INVALID,
    });
  });

  it("uses the key's own digest for P-384 and P-521, and honours an override", () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pub384 = PublicKey.fromKeyObject(p384.publicKey);
    new SignatureVerifier(pub384).verify(message, sign('sha384', message, p384.privateKey));
    assert.throws(() => new SignatureVerifier(pub384).verify(message, sign('sha256', message, p384.privateKey)), {
      code: CoreErrorCode.SIGNATURE_INVALID,
    });
    new SignatureVerifier(pub384, { digestAlgorithm: 'sha256' }).verify(message, sign('sha256', message, p384.privateKey));
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    new SignatureVerifier(PublicKey.fromKeyObject(p521.publicKey)).verify(message, sign('sha512', message, p521.privateKey));
  });

  it('verifies RSA PKCS#1 v1.5 SHA-256 and pure Ed25519, naming the family on failure', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaVerifier = new SignatureVerifier(PublicKey.fromKeyObject(rsa.publicKey));
    rsaVerifier.verify(message, sign('sha256', message, rsa.privateKey));
    assert.throws(() => rsaVerifier.verify(Buffer.from('x'), sign('sha256', message, rsa.privateKey)), {
      message: 'signature verification failed: RSA signature verification failed',
    });
    const ed = generateKeyPairSync('ed25519');
    const edVerifier = new SignatureVerifier(PublicKey.fromKeyObject(ed.publicKey));
    edVerifier.verify(message, sign(null, message, ed.privateKey));
    assert.throws(() => edVerifier.verify(Buffer.from('x'), sign(null, message, ed.privateKey)), {
      message: 'signature verification failed: Ed25519 signature verification failed',
    });
  });

  it("refuses keys outside cosign's policy", () => {
    const p224 = generateKeyPairSync('ec', { namedCurve: 'secp224r1' });
    assert.throws(() => PublicKey.fromKeyObject(p224.publicKey), {
      code: CoreErrorCode.KEY_UNSUPPORTED,
      message: 'unsupported public key: ECDSA curve P-224 not allowed',
    });
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => PublicKey.fromKeyObject(rsa1024.publicKey), { message: /key size not supported: 1024/ });
  });

  it('computes the key id as lowercase hex SHA-256 of the SPKI DER, and writes cosign.pub PEM', () => {
    const pub = PublicKey.fromKeyObject(p256.publicKey);
    assert.match(pub.keyId, /^[0-9a-f]{64}$/);
    assert.equal(pub.toPem(), p256.publicKey.export({ type: 'spki', format: 'pem' }));
    assert.equal(PublicKey.fromPem(pub.toPem()).keyId, pub.keyId);
  });
});
