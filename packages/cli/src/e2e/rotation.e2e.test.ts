// Key rotation under load: requests keep succeeding while the key rotates and a version
// signed by the new key replaces the old one; what the retired key signed before the
// rotation stays loadable, and what it signs after is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apx, apxAsync, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

describe('e2e: key rotation under load', () => {
  it('serves every request through a rotation, and keeps the retired key valid for its past signatures', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments('1.0.0'));
    const worker = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_KEYRING: 'store', APX_RELOAD_INTERVAL: '1' });
    let sent = 0;
    let failed = 0;
    let running = true;
    const load = (async () => {
      // Bounded: at most 20,000 requests, and it stops when the test says so.
      while (running && sent < 20_000) {
        const r = await worker
          .decide('pb-pay-v1', { ...PAYMENTS_GET, path: '/healthz' })
          .catch(() => ({ status: 0, body: {} as Record<string, unknown> }));
        sent++;
        if (r.status !== 200 || r.body.allow !== true) failed++;
      }
    })();
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
      const rotated = ok(await apxAsync(ws.dir, ['keys', 'rotate', '--output-key-prefix', 'keys/k2', '--publish', store]));
      assert.match(rotated.stderr, /✓ Keyring: {3}keys\/keyring\.json version 1/);
      await worker.waitFor((l) => l.message === 'keyring version 1 in force', 'keyring');
      const v110 = ws.compilePayments('1.1.0', ['--key', 'keys/k2.key']);
      ok(await apxAsync(ws.dir, ['publish', v110, '--store', store]));
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.1.0', 'new version signed by the new key');
      running = false;
      await load;
      assert.ok(sent > 0);
      assert.equal(failed, 0, `${failed} of ${sent} requests failed during the rotation`);
    } finally {
      running = false;
      await load;
      await worker.stop();
    }

    // The retired key's signature from before the rotation still verifies...
    const again = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_KEYRING: 'store', APX_POLICIES: 'pb-pay-v1@1.0.0' });
    try {
      await again.waitFor((l) => l.message === 'keyring version 1 in force', 'keyring');
      await again.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'retired key, signed while valid');
    } finally {
      await again.stop();
    }
    // ...and what it signs after the rotation does not.
    ws.stage(store, ws.compilePayments('1.2.0'));
    const late = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_KEYRING: 'store', APX_POLICIES: 'pb-pay-v1@1.2.0' });
    try {
      const line = await late.waitFor((l) => l.message.includes('outside the validity of key'), 'refusal');
      assert.match(
        line.message,
        /^artifact verification failed for pb-pay-v1@1\.2\.0: signed at \S+, outside the validity of key [0-9a-f]{12} /,
      );
    } finally {
      await late.stop();
    }
    // A keyring not signed by the keyring in force is refused.
    ok(apx(ws.dir, ['generate-key-pair', '--output-key-prefix', 'intruder/cosign']));
    ok(
      apx(ws.dir, [
        'keys',
        'rotate',
        '--key',
        'intruder/cosign.key',
        '--keyring',
        'intruder/keyring.json',
        '--output-key-prefix',
        'intruder/next',
        '--publish',
        store,
      ]),
    );
    const guarded = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_KEYRING: 'store' });
    try {
      const refused = await guarded.waitFor((l) => l.message.startsWith('keyring refused'), 'refusal');
      assert.match(refused.message, /it is not signed by an active key of the keyring in force/);
    } finally {
      await guarded.stop();
    }
  });
});
