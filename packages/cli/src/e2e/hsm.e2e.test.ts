// An HSM through PKCS#11, through the CLI and the worker: a real SoftHSM2 token initialised in
// a temporary directory (the module every PKCS#11 user loads, not a fake). The PIN reaches
// apx only through the URI or COSIGN_PKCS11_PIN, and never its output or the audit log.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SoftHsm, softhsmSkipReason } from '@apx/kms/testing/softhsm';
import { apxAsync, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

const PIN = '815926';

describe('e2e: a key in an HSM (PKCS#11, SoftHSM2)', { skip: softhsmSkipReason() }, () => {
  let hsm: SoftHsm;
  let ws: Workspace;
  // The module path and PIN from cosign's variables, so that the reference itself is plain.
  let env: Record<string, string>;
  const keyRef = 'pkcs11:token=apx;object=apx-signing';

  before(() => {
    hsm = SoftHsm.init({ pin: PIN });
    ws = new Workspace();
    env = { SOFTHSM2_CONF: hsm.conf, COSIGN_PKCS11_MODULE_PATH: hsm.modulePath, COSIGN_PKCS11_PIN: PIN };
  });
  after(() => hsm.cleanup());

  it('creates the key on the token, signs with it, and verifies with the public key read from the token', async () => {
    const withPin = hsm.uri('apx-signing', { pin: PIN });
    const created = ok(await apxAsync(ws.dir, ['generate-key-pair', '--kms', withPin, '--output-key-prefix', 'hsm'], env));
    assert.match(created.stderr, /^Created pkcs11:token=apx;object=apx-signing\?module-path=\S+; public key written to hsm\.pub/);
    const artifact = ws.compilePayments();
    ok(await apxAsync(ws.dir, ['sign-blob', '--key', keyRef, '--output-signature', 'h.sig', artifact], env));
    const verified = ok(await apxAsync(ws.dir, ['verify-blob', '--key', 'hsm.pub', '--signature', 'h.sig', artifact], env));
    assert.match(verified.stderr, /Verified OK/);
    const pub = ok(await apxAsync(ws.dir, ['public-key', '--key', keyRef], env));
    assert.equal(pub.stdout, readFileSync(ws.path('hsm.pub'), 'utf8'));
    const again = await apxAsync(ws.dir, ['generate-key-pair', '--kms', withPin, '--output-key-prefix', 'hsm2'], env);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /on token "apx" there is already an object labelled "apx-signing"/);
    for (const output of [created.stderr, again.stderr, readFileSync(ws.path('keys/audit.log'), 'utf8')]) {
      assert.doesNotMatch(output, new RegExp(PIN));
    }
    assert.match(readFileSync(ws.path('keys/audit.log'), 'utf8'), /"key_ref":"pkcs11:token=apx;object=apx-signing"/);
  });

  it('says a wrong PIN in one line, without the PIN', async () => {
    const r = await apxAsync(ws.dir, ['sign-blob', '--key', keyRef, ws.path('payments-1.0.0.yaml')], {
      ...env,
      COSIGN_PKCS11_PIN: '000000',
    });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^ERROR: pkcs11:token=apx;object=apx-signing.*: login failed: CKR_PIN_INCORRECT/);
    assert.doesNotMatch(r.stderr, /000000/);
  });

  it('compiles with the HSM key, and a worker trusting the same HSM key loads and serves the policy', async () => {
    ok(await apxAsync(ws.dir, ['compile', '--out', 'hsm-store', '--key', keyRef, ws.path('payments-1.0.0.yaml')], env));
    const worker = await WorkerProcess.start(ws.dir, { ...env, APX_STORE: ws.path('hsm-store'), APX_PUBLIC_KEY: keyRef });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.allow, true);
      assert.ok(!worker.logs.some((l) => JSON.stringify(l).includes(PIN)));
    } finally {
      await worker.stop();
    }
  });
});
