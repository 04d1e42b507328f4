// Freshness end to end: workers load the version a signed, expiring index names; when the
// index is not renewed (a frozen store), they refuse new loads, keep serving for the grace
// period, then stop, and a fresh index brings them back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apx, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

describe('e2e: freshness (signed, expiring policy index)', () => {
  it('follows the index, refuses new loads once it expires, stops after the grace, and resumes on a fresh index', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments('1.0.0'));
    ok(apx(ws.dir, ['index', '--store', store, '--expires', '3s']));
    const worker = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      APX_INDEX: 'store',
      APX_INDEX_GRACE: '2',
      APX_RELOAD_INTERVAL: '1',
    });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load from the index');
      // A newer version appears in the store, but the index does not name it: not taken.
      ws.stage(store, ws.compilePayments('1.1.0'));
      const expired = await worker.waitFor(
        (l) => /^policy index expired at \S+: refusing new loads, serving what is loaded until \S+$/.test(l.message),
        'expiry',
      );
      assert.equal(expired.severity, 'WARNING');
      assert.equal(
        (await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.policy,
        'pb-pay-v1@1.0.0',
        'still serving within the grace',
      );
      assert.equal(await worker.metric('apx_policy_index_expired'), 1);
      const stopped = await worker.waitFor(
        (l) => l.message.endsWith('grace period over, 1 serving version(s) unloaded'),
        'grace over',
      );
      assert.equal(stopped.severity, 'ERROR');
      assert.equal((await worker.get('/readyz')).status, 503);
      // A fresh index names 1.1.0: the worker loads it.
      ok(apx(ws.dir, ['index', '--store', store, '--expires', '1h']));
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.1.0', 'load after a fresh index');
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.policy, 'pb-pay-v1@1.1.0');
    } finally {
      await worker.stop();
    }
  });
});
