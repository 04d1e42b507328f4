// The shared cosign vectors for keys (../shared/vectors/cosign/{keys,envelopes,import}),
// with the outcomes its README gives. Skipped, with the reason printed, where absent.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { decodeFirstPem, encodePem, PublicKey } from '@apx/core';
import { SignErrorCode } from './error.js';
import { decryptEnvelope, decryptPrivateKey } from './keys/encrypted-key.js';
import { parseImportableKey } from './keys/key-pair.js';

const VECTORS = resolve(process.env.APX_SHARED_DIR ?? resolve(process.cwd(), '..', 'shared'), 'vectors', 'cosign');
const skip = existsSync(VECTORS) ? false : `cosign vectors not found at ${VECTORS} (set APX_SHARED_DIR to the shared folder)`;
if (skip) console.log(`# SKIP ${skip}`);
const text = (p: string) => readFileSync(join(VECTORS, p), 'utf8');
const bytes = (p: string) => readFileSync(join(VECTORS, p));

const DECRYPTABLE: Array<[string, string, string]> = [
  ['rs-cosign-generated-empty-pw', '', 'x'],
  ['conforma-vsa-empty-pw', '', 'x'],
  ['rs-ecdsa-cosign-label-pw-123', '123', 'wrong'],
  ['cosign-test-pemcosignkey-pw-hello', 'hello', ''],
  ['cosign-test-pemsigstorekey-pw-hello', 'hello', ''],
];

describe('cosign vectors: keys/', { skip }, () => {
  for (const [name, password, wrong] of DECRYPTABLE) {
    it(`${name}: decrypts to the expected PKCS#8 and public key; "${wrong}" is refused`, async () => {
      const key = await decryptPrivateKey(text(`keys/${name}.key`), password, `${name}.key`);
      assert.deepEqual(key.export({ type: 'pkcs8', format: 'der' }), bytes(`keys/${name}.decrypted.bin`));
      assert.equal(PublicKey.fromKeyObject(key).toPem(), text(`keys/${name}.derived.pub`));
      await assert.rejects(decryptPrivateKey(text(`keys/${name}.key`), wrong, `${name}.key`), {
        code: SignErrorCode.DECRYPT_FAILED,
        message: `wrong password for ${name}.key (decrypt: encrypted: decryption failed)`,
      });
    });
  }

  it("refuses the SEC1 plaintext key with cosign's parse error", async () => {
    await assert.rejects(
      decryptPrivateKey(text('keys/cosign-test-pemcosigneckey-pw-hello-SEC1-plaintext.key'), 'hello', 'k.key'),
      {
        code: SignErrorCode.PRIVATE_KEY_INVALID,
        message:
          'invalid private key in k.key: parsing private key: x509: failed to parse private key (use ParseECPrivateKey instead for this key format)',
      },
    );
  });

  it('cosign-ci-unknown-pw: parses, and the empty password does not open it', async () => {
    assert.ok(PublicKey.fromPem(text('keys/cosign-ci-unknown-pw.pub')).keyId);
    await assert.rejects(decryptPrivateKey(text('keys/cosign-ci-unknown-pw.key'), '', 'ci.key'), {
      code: SignErrorCode.DECRYPT_FAILED,
    });
  });

  it("every key file re-encodes byte-for-byte with APX's PEM writer, and has cosign's exact JSON shape", () => {
    const shape =
      /^\{"kdf":\{"name":"scrypt","params":\{"N":(32768|65536),"r":8,"p":1\},"salt":"[A-Za-z0-9+/]{43}="\},"cipher":\{"name":"nacl\/secretbox","nonce":"[A-Za-z0-9+/]{32}"\},"ciphertext":"[A-Za-z0-9+/=]+"\}$/;
    const names = [...DECRYPTABLE.map(([n]) => n), 'cosign-test-pemcosigneckey-pw-hello-SEC1-plaintext', 'cosign-ci-unknown-pw'];
    for (const name of names) {
      const file = text(`keys/${name}.key`);
      const block = decodeFirstPem(file);
      assert.ok(block, name);
      assert.equal(encodePem(block.label, block.der), file, name);
      assert.match(block.der.toString('utf8'), shape, name);
    }
  });
});

describe('cosign vectors: envelopes/', { skip }, () => {
  for (const n of ['legacy-N32768', 'standard-N65536', 'owasp-N131072']) {
    it(`sslib-marshal-${n} opens to the JSON-encoded secret`, async () => {
      const plain = await decryptEnvelope(text(`envelopes/sslib-marshal-${n}.json`), 'supersecret', n);
      assert.equal(plain.toString('utf8'), '"cmVhbGx5aW1wb3J0YW50"');
    });
  }

  it('sslib-decrypt-raw-N32768 opens to the raw secret', async () => {
    const plain = await decryptEnvelope(text('envelopes/sslib-decrypt-raw-N32768.json'), 'supersecret', 'raw');
    assert.equal(plain.toString('utf8'), 'reallyimportant');
  });

  it('refuses N=99, r=99, p=99 before running scrypt', async () => {
    await assert.rejects(decryptEnvelope(text('envelopes/sslib-unsupported-params-N99.json'), 'supersecret', 'n99.json'), {
      code: SignErrorCode.KDF_UNSUPPORTED,
      message: 'unsupported scrypt parameters in n99.json: N=99, r=99, p=99',
    });
  });
});

describe('cosign vectors: import/', { skip }, () => {
  for (const name of [
    'validecp256',
    'validecpkcs8',
    'validecp384',
    'validecp521',
    'ed25519key',
    'validrsapkcs1',
    'validrsapkcs8',
  ]) {
    it(`accepts ${name} and derives cosign's public key`, () => {
      const key = parseImportableKey(text(`import/${name}.key`), name);
      assert.equal(PublicKey.fromKeyObject(key).toPem(), text(`import/${name}.derived.pub`));
    });
  }

  const refused: Array<[string, string]> = [
    ['invalidecp224', 'error validating ecdsa key: ECDSA curve P-224 not allowed'],
    ['invalidrsasmallkey', 'error validating rsa key: key size not supported: 1024'],
    ['invalidecunsupported', 'error parsing ecdsa private key'],
    ['invalidrsawithpubkey', 'unsupported private key'],
  ];
  for (const [name, reason] of refused) {
    it(`refuses ${name}: ${reason}`, () => {
      assert.throws(
        () => parseImportableKey(text(`import/${name}.key`), name),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, SignErrorCode.KEY_IMPORT_REFUSED);
          assert.ok(err.message.startsWith(`cannot import ${name}: ${reason}`), err.message);
          return true;
        },
      );
    });
  }
});
