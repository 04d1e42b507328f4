// Revocation end to end: apx revoke publishes a signed list; the worker polls it, unloads
// what it revokes, refuses to load it again, and refuses a list older than the one it holds.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { apx, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

describe('e2e: revocation', () => {
  it('unloads a revoked artifact, refuses it afterwards, and refuses a stale list', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments());
    const worker = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      APX_POLICIES: 'pb-pay-v1@1.0.0',
      APX_REVOCATIONS: 'store',
      APX_RELOAD_INTERVAL: '1',
    });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).status, 200);

      const revoked = ok(
        apx(ws.dir, [
          'revoke',
          'pb-pay-v1@1.0.0',
          '--reason',
          'leaked rule',
          '--list',
          'rev/revocations.json',
          '--publish',
          store,
        ]),
      );
      assert.match(revoked.stderr, /✓ Revoked: {3}pb-pay-v1@1\.0\.0 \(revocation list rev\/revocations\.json, version 1\)/);
      copyFileSync(ws.path('rev/revocations.json'), ws.path('v1.json'));
      copyFileSync(ws.path('rev/revocations.json.sig'), ws.path('v1.json.sig'));

      const unloaded = await worker.waitFor((l) => l.message.startsWith('policy unloaded: '), 'unload');
      assert.equal(unloaded.severity, 'ERROR');
      assert.equal(unloaded.security_event, 'revoked_artifact');
      assert.match(
        unloaded.message,
        /^policy unloaded: artifact verification failed for pb-pay-v1@1\.0\.0: revoked: pb-pay-v1@1\.0\.0 \(leaked rule, /,
      );
      assert.equal((await worker.get('/readyz')).status, 503);
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).status, 503);
      assert.ok((await worker.metric('apx_artifacts_revoked_blocked_total')) >= 1);
      // Retries do not bring it back.
      await worker.waitFor(
        (l) => l.message.startsWith('artifact verification failed for pb-pay-v1@1.0.0: revoked: '),
        'refused reload',
      );

      // A newer list is taken; an older one put back (a replay) is refused.
      ok(
        apx(ws.dir, [
          'revoke',
          'pb-pay-v1@9.9.9',
          '--reason',
          'never shipped',
          '--list',
          'rev/revocations.json',
          '--publish',
          store,
        ]),
      );
      await worker.waitFor((l) => l.message === 'revocation list version 2 in force', 'version 2');
      copyFileSync(ws.path('v1.json.sig'), `${store}/revocations.json.sig`);
      copyFileSync(ws.path('v1.json'), `${store}/revocations.json`);
      const stale = await worker.waitFor((l) => l.message.startsWith('revocation list refused, keeping version 2'), 'stale');
      assert.match(stale.message, /version 1 is older than the list held \(version 2\)/);
      assert.ok((await worker.metric('apx_revocation_list_rejected_total')) >= 1);
    } finally {
      await worker.stop();
    }
  });

  it('refuses an unsigned or foreign-signed list and keeps what it holds', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments());
    ok(apx(ws.dir, ['generate-key-pair', '--output-key-prefix', 'stranger/cosign']));
    ok(apx(ws.dir, ['revoke', 'pb-pay-v1@1.0.0', '--reason', 'forged', '--key', 'stranger/cosign.key', '--publish', store]));
    const worker = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_REVOCATIONS: 'store' });
    try {
      const refused = await worker.waitFor((l) => l.message.startsWith('revocation list refused'), 'refusal');
      assert.match(refused.message, /its signature does not verify with an active key of the keyring/);
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load despite the forged list');
    } finally {
      await worker.stop();
    }
  });
});
