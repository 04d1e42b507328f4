// Issue 11, bounded execution: a signed policy whose decide never returns cannot take a
// worker down. Through the real CLI: the module is signed with `apx sign`, served by
// `apx worker`, and the request that loops is answered (deny 503) while /healthz keeps
// answering, the artifact is unloaded and reported, and SIGTERM still stops the process.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { policyModule } from '@apx/core/testing';
import { apx, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

describe('a policy that never returns (APX_DECISION_DEADLINE_MS)', () => {
  const ws = new Workspace();
  after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const store = ws.path('store');
  mkdirSync(store, { recursive: true });
  // A module of the policy ABI whose decide is `loop br 0 end`, signed like any artifact.
  const artifact = ws.path('store', 'pb-loop@1.0.0.wasm');
  writeFileSync(artifact, policyModule('pb-loop', '1.0.0', { spin: Number.POSITIVE_INFINITY }));
  ok(apx(ws.dir, ['sign', artifact, '--version', '1.0.0']));
  // A well-behaved policy beside it keeps serving.
  ws.stage(store, ws.compilePayments());

  it('is stopped at its deadline: deny 503, /healthz answers, the artifact is unloaded and reported, SIGTERM stops the worker', async () => {
    const worker = await WorkerProcess.start(ws.dir, { APX_STORE: store, APX_DECISION_DEADLINE_MS: '100' });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-loop@1.0.0');
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0');
      assert.equal((await worker.get('/readyz')).status, 200);

      // A decision, like any other: HTTP 200 carrying the deny and its status.
      const looped = await worker.decide('pb-loop', PAYMENTS_GET);
      assert.equal(looped.status, 200);
      assert.equal(looped.body.status, 503);
      assert.equal(looped.body.allow, false);
      assert.match(String(looped.body.reason), /deadline/);

      // The worker kept its thread: liveness, the other policy, metrics.
      assert.equal((await worker.get('/healthz')).status, 200);
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.allow, true);
      assert.equal(await worker.metric('apx_policy_deadline_exceeded_total{policy="pb-loop@1.0.0"}'), 1);

      const stopped = await worker.waitFor((l) => l.reason === 'DECISION_DEADLINE_EXCEEDED', 'unload line');
      assert.equal(stopped.severity, 'ERROR');
      assert.match(stopped.message, /APX_DECISION_DEADLINE_MS \(100 ms\)/);
      // Unloaded: not ready, and later requests are refused without running the module.
      assert.equal((await worker.get('/readyz')).status, 503);
      const again = await worker.decide('pb-loop', PAYMENTS_GET);
      assert.notEqual(again.body.allow, true);
      assert.equal(await worker.metric('apx_policy_deadline_exceeded_total'), 1);
      // SIGTERM is handled (the event loop is free): a clean exit, not a kill.
      assert.equal(await worker.stop(), 0);
    } finally {
      await worker.stop();
    }
  });
});
