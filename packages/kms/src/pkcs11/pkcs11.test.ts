// PKCS#11 keys against a real SoftHSM2 token: the module is loaded, keys are generated and
// used on the token, and openssl checks the signatures against the public key the token holds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type PublicKey, SignatureVerifier } from '@apx/core';
import { toolMissing } from '@apx/core/testing/tools';
import type { KmsKey } from '../kms-key.js';
import { createKmsKey, openKmsKey } from '../open.js';
import { SoftHsm, softhsmSkipReason } from '../testing/softhsm.js';
import { Pkcs11Key } from './pkcs11-key.js';

const skip = softhsmSkipReason();
// openssl checks every signature the token makes (when it is installed; CI requires it).
const hasOpenssl = toolMissing('openssl') === false;

/** openssl's verdict on `signature` over `message` with `pub`: `dgst` for ECDSA/RSA, `pkeyutl -rawin` for Ed25519. */
function opensslVerifies(pub: PublicKey, message: Buffer, signature: Buffer): void {
  const dir = mkdtempSync(join(tmpdir(), 'apx-pkcs11-'));
  writeFileSync(join(dir, 'pub.pem'), pub.toPem());
  writeFileSync(join(dir, 'msg'), message);
  writeFileSync(join(dir, 'sig.der'), signature);
  const digest = pub.algorithm === 'ecdsa-p384' ? '-sha384' : pub.algorithm === 'ecdsa-p521' ? '-sha512' : '-sha256';
  const args =
    pub.algorithm === 'ed25519'
      ? ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-rawin', '-in', 'msg', '-sigfile', 'sig.der']
      : ['dgst', digest, '-verify', 'pub.pem', '-signature', 'sig.der', 'msg'];
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

async function signAndCheck(key: KmsKey, algorithm: string): Promise<void> {
  const pub = await key.publicKey();
  assert.equal(pub.algorithm, algorithm);
  const message = Buffer.from(`signed on the token by ${key.keyRef}`);
  const result = await key.sign(message);
  assert.equal(result.publicKey.keyId, pub.keyId);
  new SignatureVerifier(pub).verify(message, result.signature);
  if (hasOpenssl) opensslVerifies(pub, message, result.signature);
}

/** One line, no PIN anywhere in what the user sees. */
function oneLineWithoutPin(pin: string, code: string, message: RegExp) {
  return (err: Error & { code?: string; hint?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), err.message);
    assert.ok(!`${err.message} ${err.hint ?? ''}`.includes(pin), `the PIN leaked: ${err.message} / ${err.hint}`);
    return true;
  };
}

/**
 * Key types APX supports besides the P-256 keys it creates, generated on the token through
 * the binding directly (as an HSM administrator's tool would).
 */
function generateOtherKeys(hsm: SoftHsm): void {
  const pkcs11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
  const lib = new pkcs11.PKCS11();
  lib.load(hsm.modulePath);
  lib.C_Initialize();
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === hsm.label);
    assert.ok(slot);
    const session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
    lib.C_Login(session, pkcs11.CKU_USER, hsm.pin);
    const pair = (label: string, id: number, mechanism: number, pub: { type: number; value: unknown }[], keyType: number) =>
      lib.C_GenerateKeyPair(
        session,
        { mechanism },
        [
          { type: pkcs11.CKA_TOKEN, value: true },
          { type: pkcs11.CKA_LABEL, value: label },
          { type: pkcs11.CKA_ID, value: Buffer.of(id) },
          { type: pkcs11.CKA_VERIFY, value: true },
          ...(pub as { type: number; value: Buffer | number | boolean }[]),
        ],
        [
          { type: pkcs11.CKA_TOKEN, value: true },
          { type: pkcs11.CKA_LABEL, value: label },
          { type: pkcs11.CKA_ID, value: Buffer.of(id) },
          { type: pkcs11.CKA_KEY_TYPE, value: keyType },
          { type: pkcs11.CKA_SIGN, value: true },
          { type: pkcs11.CKA_SENSITIVE, value: true },
          { type: pkcs11.CKA_PRIVATE, value: true },
        ],
      );
    pair(
      'rsa',
      0x0a,
      pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN,
      [
        { type: pkcs11.CKA_MODULUS_BITS, value: 2048 },
        { type: pkcs11.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      ],
      pkcs11.CKK_RSA,
    );
    pair(
      'p384',
      0x0b,
      pkcs11.CKM_EC_KEY_PAIR_GEN,
      [{ type: pkcs11.CKA_EC_PARAMS, value: Buffer.from('06052b81040022', 'hex') }],
      pkcs11.CKK_EC,
    );
    // CKM_EC_EDWARDS_KEY_PAIR_GEN and CKK_EC_EDWARDS (PKCS#11 3.0), curve by OID 1.3.101.112.
    pair('ed25519', 0x0c, 0x1055, [{ type: pkcs11.CKA_EC_PARAMS, value: Buffer.from('06032b6570', 'hex') }], 0x40);
    // Two keys under one label, told apart by id only.
    pair(
      'twin',
      0x0d,
      pkcs11.CKM_EC_KEY_PAIR_GEN,
      [{ type: pkcs11.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }],
      pkcs11.CKK_EC,
    );
    pair(
      'twin',
      0x0e,
      pkcs11.CKM_EC_KEY_PAIR_GEN,
      [{ type: pkcs11.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }],
      pkcs11.CKK_EC,
    );
    lib.C_Logout(session);
    lib.C_CloseSession(session);
  } finally {
    lib.C_Finalize();
    lib.close();
  }
}

describe('PKCS#11 keys on a SoftHSM2 token', { skip }, () => {
  let hsm: SoftHsm;
  before(() => {
    hsm = SoftHsm.init();
    generateOtherKeys(hsm);
  });
  after(() => hsm?.cleanup());

  it('creates an ECDSA P-256 key on the token, opens it by URI and signs what openssl and APX verify', async () => {
    const created = await createKmsKey(hsm.uri('signing'), {});
    const createdPub = await created.publicKey();
    await created.close();
    const key = await openKmsKey(hsm.uri('signing'), {});
    try {
      assert.ok(key instanceof Pkcs11Key);
      assert.equal(key.keyRef, `pkcs11:token=apx;object=signing?module-path=${hsm.modulePath}`);
      assert.equal((await key.publicKey()).keyId, createdPub.keyId);
      await signAndCheck(key, 'ecdsa-p256');
    } finally {
      await key.close();
    }
  });

  it('opens the key by the reference in the docs, and with module path and PIN from COSIGN_PKCS11_*', async () => {
    const key = await openKmsKey(`pkcs11:token=apx;object=signing?module-path=${hsm.modulePath}&pin-value=1234`, {});
    await key.close();
    const env = { COSIGN_PKCS11_MODULE_PATH: hsm.modulePath, COSIGN_PKCS11_PIN: hsm.pin };
    const fromEnv = await openKmsKey('pkcs11:token=apx;object=signing', env);
    try {
      assert.equal(fromEnv.keyRef, 'pkcs11:token=apx;object=signing');
      await signAndCheck(fromEnv, 'ecdsa-p256');
    } finally {
      await fromEnv.close();
    }
  });

  it('signs with RSA (DigestInfo over CKM_RSA_PKCS), P-384 and Ed25519 keys the token holds', async () => {
    for (const [object, algorithm] of [
      ['rsa', 'rsa'],
      ['p384', 'ecdsa-p384'],
      ['ed25519', 'ed25519'],
    ] as const) {
      const key = await Pkcs11Key.open(hsm.uri(object), {});
      try {
        await signAndCheck(key, algorithm);
      } finally {
        await key.close();
      }
    }
  });

  it('tells keys under one label apart by id, and asks for an id when the label is ambiguous', async () => {
    await assert.rejects(
      Pkcs11Key.open(hsm.uri('twin'), {}),
      oneLineWithoutPin(hsm.pin, 'KMS_FAILED', /: 2 private keys labelled "twin": "twin" id=%0d, "twin" id=%0e$/),
    );
    const key = await Pkcs11Key.open(`pkcs11:token=apx;id=%0e?module-path=${hsm.modulePath}&pin-value=${hsm.pin}`, {});
    try {
      await signAndCheck(key, 'ecdsa-p256');
    } finally {
      await key.close();
    }
  });

  it('keeps a key working while another key on the same token closes (shared module and login)', async () => {
    const a = await Pkcs11Key.open(hsm.uri('signing'), {});
    const b = await Pkcs11Key.open(hsm.uri('p384'), {});
    await Promise.all([a.sign(Buffer.from('1')), a.sign(Buffer.from('2')), b.sign(Buffer.from('3'))]);
    await a.close();
    try {
      await signAndCheck(b, 'ecdsa-p384');
    } finally {
      await b.close();
    }
    await assert.rejects(a.sign(Buffer.from('late')), { code: 'KMS_FAILED', message: /the key is closed$/ });
  });

  it('refuses a wrong PIN in one line with CKR_PIN_INCORRECT and without the PIN', async () => {
    await assert.rejects(
      openKmsKey(hsm.uri('signing', { pin: '98765' }), {}),
      oneLineWithoutPin(
        '98765',
        'KMS_FAILED',
        /^pkcs11:token=apx;object=signing\?module-path=\S+: login failed: CKR_PIN_INCORRECT$/,
      ),
    );
    await assert.rejects(openKmsKey(hsm.uri('signing', { pin: '98765' }), {}), { hint: /COSIGN_PKCS11_PIN or pin-value/ });
    await assert.rejects(
      openKmsKey(hsm.uri('signing', { pin: null }), {}),
      oneLineWithoutPin(hsm.pin, 'KMS_FAILED', /: token "apx" needs the user PIN$/),
    );
  });

  it('names an unknown token with the tokens it saw, and an unknown key with the keys it saw', async () => {
    await assert.rejects(
      openKmsKey(hsm.uri('signing', { token: 'nope' }), {}),
      oneLineWithoutPin(hsm.pin, 'KMS_FAILED', /: token "nope" not found in \S+; tokens seen: "apx" \(slot \d+\)$/),
    );
    await assert.rejects(
      openKmsKey(hsm.uri('missing'), {}),
      oneLineWithoutPin(
        hsm.pin,
        'KMS_FAILED',
        /: no private key labelled "missing" on the token; private keys seen: .*"signing" id=%/,
      ),
    );
  });

  it('names a module path that does not exist or is not a PKCS#11 module', async () => {
    await assert.rejects(
      openKmsKey(`pkcs11:token=apx;object=signing?module-path=/nonexistent/libhsm.so&pin-value=${hsm.pin}`, {}),
      oneLineWithoutPin(hsm.pin, 'KMS_FAILED', /: PKCS#11 module \/nonexistent\/libhsm.so not found$/),
    );
    await assert.rejects(
      openKmsKey(`pkcs11:token=apx;object=signing?module-path=${hsm.conf}&pin-value=${hsm.pin}`, {}),
      oneLineWithoutPin(hsm.pin, 'KMS_FAILED', /: cannot load PKCS#11 module \S+softhsm2.conf: /),
    );
  });

  it('refuses to create a key whose label is taken, and a key without a label', async () => {
    await assert.rejects(
      createKmsKey(hsm.uri('signing'), {}),
      oneLineWithoutPin(hsm.pin, 'KEY_EXISTS', /: on token "apx" there is already an object labelled "signing"$/),
    );
    await assert.rejects(
      createKmsKey(`pkcs11:token=apx;id=%0a?module-path=${hsm.modulePath}&pin-value=${hsm.pin}`, {}),
      oneLineWithoutPin(hsm.pin, 'KEY_REF_INVALID', /a new key needs a label$/),
    );
  });
});
