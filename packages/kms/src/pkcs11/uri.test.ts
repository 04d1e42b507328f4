import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parsePkcs11Uri, readPin } from './uri.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';

describe('PKCS#11 URI (RFC 7512, as cosign reads it)', () => {
  it('reads token, object, id bytes, module path and PIN', () => {
    const uri = parsePkcs11Uri(`pkcs11:token=apx;object=signing;id=%01%ff%20?module-path=${MODULE}&pin-value=1234`);
    assert.equal(uri.token, 'apx');
    assert.equal(uri.object, 'signing');
    assert.deepEqual(uri.id, Buffer.from([0x01, 0xff, 0x20]));
    assert.equal(uri.slotId, undefined);
    assert.equal(uri.modulePath, MODULE);
    assert.equal(uri.pin, '1234');
    assert.equal(uri.redacted, `pkcs11:token=apx;object=signing;id=%01%ff%20?module-path=${MODULE}`);
  });

  it('percent-decodes labels (UTF-8), reads + as a space as cosign does, and slot-id as a number', () => {
    const uri = parsePkcs11Uri(`pkcs11:slot-id=161937577;object=my+key%2B%C3%A9?module-path=${MODULE}`);
    assert.equal(uri.token, undefined);
    assert.equal(uri.slotId, 161937577n);
    assert.equal(uri.object, 'my key+é');
  });

  it('takes ; and & as separators in both parts, and ignores attributes APX does not use', () => {
    const uri = parsePkcs11Uri(`pkcs11:token=apx&object=k;type=private;serial=abc?module-path=${MODULE};pin-value=1`);
    assert.equal(uri.object, 'k');
    assert.equal(uri.pin, '1');
  });

  it('falls back to COSIGN_PKCS11_MODULE_PATH and COSIGN_PKCS11_PIN; the URI wins', () => {
    const env = { COSIGN_PKCS11_MODULE_PATH: '/opt/hsm/lib.so', COSIGN_PKCS11_PIN: '0000' };
    const fromEnv = parsePkcs11Uri('pkcs11:token=apx;object=k', env);
    assert.equal(fromEnv.modulePath, '/opt/hsm/lib.so');
    assert.equal(fromEnv.pin, '0000');
    assert.equal(fromEnv.redacted, 'pkcs11:token=apx;object=k');
    const own = parsePkcs11Uri(`pkcs11:token=apx;object=k?module-path=${MODULE}&pin-value=1234`, env);
    assert.equal(own.modulePath, MODULE);
    assert.equal(own.pin, '1234');
  });

  it('reads the PIN from pin-source (file:), which wins over COSIGN_PKCS11_PIN', () => {
    const dir = mkdtempSync(join(tmpdir(), 'apx-pin-'));
    const file = join(dir, 'pin');
    writeFileSync(file, '4321\n');
    const uri = parsePkcs11Uri(`pkcs11:token=apx;object=k?module-path=${MODULE}&pin-source=file:${file}`, {
      COSIGN_PKCS11_PIN: '0000',
    });
    assert.equal(uri.pin, undefined);
    assert.equal(readPin(uri), '4321');
    rmSync(dir, { recursive: true, force: true });
    assert.equal(uri.redacted, `pkcs11:token=apx;object=k?module-path=${MODULE}&pin-source=file:${file}`);
    const missing = parsePkcs11Uri(`pkcs11:token=apx;object=k?module-path=${MODULE}&pin-source=/nonexistent/pin`);
    assert.throws(() => readPin(missing), {
      code: 'KMS_FAILED',
      message: /cannot read the PIN file \/nonexistent\/pin: ENOENT$/,
    });
  });

  it('refuses incomplete or malformed URIs with one line naming the fix, never the PIN', () => {
    const cases: [string, RegExp][] = [
      [`pkcs11:object=k?module-path=${MODULE}&pin-value=s3cret`, /one of token and slot-id must be set$/],
      [`pkcs11:token=apx?module-path=${MODULE}&pin-value=s3cret`, /one of object and id must be set$/],
      [`pkcs11:slot-id=abc;object=k?module-path=${MODULE}&pin-value=s3cret`, /slot-id "abc" is not a number$/],
      ['pkcs11:token=apx;object=k?pin-value=s3cret', /module-path or COSIGN_PKCS11_MODULE_PATH must be set$/],
      ['pkcs11:token=apx;object=k?module-path=lib.so&pin-value=s3cret', /module path lib.so is not absolute$/],
      [`pkcs11:token=apx;object=%zz?module-path=${MODULE}&pin-value=s3cret`, /malformed percent-encoding/],
      [`pkcs11:token=apx;token=b;object=k?module-path=${MODULE}&pin-value=s3cret`, /the path attribute token appears twice$/],
      ['hashivault://k', /does not start with pkcs11:$/],
    ];
    for (const [ref, message] of cases) {
      assert.throws(
        () => parsePkcs11Uri(ref),
        (err: Error & { code?: string; hint?: string }) => {
          assert.equal(err.code, 'KEY_REF_INVALID');
          assert.match(err.message, message);
          assert.ok(!`${err.message} ${err.hint}`.includes('s3cret'), err.message);
          assert.ok(!err.message.includes('\n'));
          return true;
        },
      );
    }
  });

  it('redacts every spelling of pin-value, and drops undecodable segments that could hide one', () => {
    const ref = `pkcs11:token=apx;object=k?pin%2Dvalue=s3cret&module-path=${MODULE}&pin-value=s3cret`;
    assert.throws(
      () => parsePkcs11Uri(ref),
      (err: Error) => !err.message.includes('s3cret'),
    );
    const spelled = parsePkcs11Uri(`pkcs11:token=apx;object=k?pin%2Dvalue=s3cret&module-path=${MODULE}`);
    assert.equal(spelled.pin, 's3cret');
    assert.equal(spelled.redacted, `pkcs11:token=apx;object=k?module-path=${MODULE}`);
    assert.throws(
      () => parsePkcs11Uri(`pkcs11:token=apx;object=k?module-path=${MODULE}&pin-value=s3cret%zz`),
      (err: Error) => /malformed percent-encoding/.test(err.message) && !err.message.includes('s3cret'),
    );
  });
});
