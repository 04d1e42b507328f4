import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFirstPem } from '@apx/core';
import { SignErrorCode } from '../error.js';
import { decryptPrivateKey, encryptToEnvelope, SIGSTORE_KEY_LABEL } from './encrypted-key.js';
import { generateKeyPair } from './key-pair.js';

describe('cosign encrypted key files', () => {
  it('generate-key-pair writes what cosign writes: label, layout, KDF parameters, sizes', async () => {
    const pair = await generateKeyPair('correct horse');
    const block = decodeFirstPem(pair.privatePem);
    assert.equal(block?.label, SIGSTORE_KEY_LABEL);
    const lines = pair.privatePem.split('\n');
    assert.ok(lines.slice(1, -3).every((l) => l.length === 64));
    assert.ok(pair.privatePem.endsWith('-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n'));
    const env = JSON.parse(block?.der.toString('utf8') ?? '');
    assert.deepEqual(Object.keys(env), ['kdf', 'cipher', 'ciphertext']);
    assert.deepEqual(env.kdf.params, { N: 65536, r: 8, p: 1 });
    assert.equal(Buffer.from(env.kdf.salt, 'base64').length, 32);
    assert.equal(Buffer.from(env.cipher.nonce, 'base64').length, 24);
    // 138-byte P-256 PKCS#8 plus the 16-byte Poly1305 tag.
    assert.equal(Buffer.from(env.ciphertext, 'base64').length, 138 + 16);
    assert.equal(pair.publicPem.length, 178);
  });

  it('round-trips, with an empty password being a real (empty) passphrase', async () => {
    for (const password of ['', 'pässwörd']) {
      const pair = await generateKeyPair(password);
      const key = await decryptPrivateKey(pair.privatePem, password, 'k.key');
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      await assert.rejects(decryptPrivateKey(pair.privatePem, `${password}x`, 'k.key'), { code: SignErrorCode.DECRYPT_FAILED });
    }
  });

  it('names what is wrong with files that are not cosign keys', async () => {
    await assert.rejects(decryptPrivateKey('nothing', '', 'k.key'), {
      code: SignErrorCode.PRIVATE_KEY_INVALID,
      message: 'invalid private key in k.key: no PEM block found',
    });
    const plain = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
    await assert.rejects(decryptPrivateKey(plain, '', 'k.key'), {
      message: 'invalid private key in k.key: PEM type "PRIVATE KEY" is not a cosign encrypted key',
    });
    const env = JSON.parse(await encryptToEnvelope(Buffer.from('x'), ''));
    env.cipher.name = 'aes-gcm';
    const pem = `-----BEGIN ${SIGSTORE_KEY_LABEL}-----\n${Buffer.from(JSON.stringify(env)).toString('base64')}\n-----END ${SIGSTORE_KEY_LABEL}-----\n`;
    await assert.rejects(decryptPrivateKey(pem, '', 'k.key'), {
      message: 'invalid private key in k.key: unsupported cipher aes-gcm',
    });
  });
});
