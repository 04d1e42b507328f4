// Issue 16, graceful drain: `apx worker` stopped by SIGTERM keeps serving for APX_DRAIN_SECONDS
// with /readyz at 503 (load balancers take it out of rotation), finishes a request that was in
// flight when the signal came (here a decision whose body the test is still uploading, held open
// by the test itself), closes its HTTP and gRPC servers and exits 0. A second signal during the
// drain ends the process at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertGrpcAllows, heldDecision, type LogLine, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

const isDraining = (l: LogLine) => l.message.startsWith('draining: ');
const isDrainOver = (l: LogLine) => l.message.startsWith('drain over: ');

describe('e2e: graceful drain on SIGTERM (APX_DRAIN_SECONDS)', () => {
  const ws = new Workspace();
  const store = ws.path('store');
  ws.stage(store, ws.compilePayments());
  const decision = JSON.stringify({ policy: 'pb-pay-v1', request: PAYMENTS_GET });

  async function readyWorker(drainSeconds: string): Promise<WorkerProcess> {
    const worker = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      APX_POLICIES: 'pb-pay-v1',
      APX_GRPC_PORT: '0',
      APX_DRAIN_SECONDS: drainSeconds,
    });
    await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'policy loaded');
    assert.equal((await worker.get('/readyz')).status, 200);
    return worker;
  }

  it('keeps serving with /readyz at 503, finishes the request in flight, closes HTTP and gRPC, exits 0', async () => {
    const worker = await readyWorker('5');
    const inFlight = await heldDecision(worker.url, decision);

    worker.kill('SIGTERM');
    await worker.waitFor(isDraining, 'draining line');
    const ready = await worker.get('/readyz');
    assert.equal(ready.status, 503);
    assert.deepEqual((ready.body as { status: string }).status, 'draining');
    assert.equal((await worker.get('/healthz')).status, 200);
    // A new request, on a new connection, is still decided; the connection is not kept alive.
    const res = await fetch(`${worker.url}/v1/decide`, { method: 'POST', body: decision });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('connection'), 'close');
    assert.equal(((await res.json()) as { allow: boolean }).allow, true);
    // Envoy's ext_authz over gRPC is still answered too.
    await assertGrpcAllows(worker);
    assert.ok(!worker.logs.some(isDrainOver), 'the drain ended before the checks: raise APX_DRAIN_SECONDS in this test');

    // The drain period ends with the upload still open: the servers close, the request finishes.
    await worker.waitFor(isDrainOver, 'drain over line');
    const answer = await inFlight.finish();
    assert.equal(answer.status, 200, answer.body);
    assert.equal((JSON.parse(answer.body) as { allow: boolean; policy: string }).allow, true);
    assert.equal(await worker.exit, 0);
    // Closed: nothing listens any more.
    await assert.rejects(fetch(`${worker.url}/healthz`));
  });

  it('exits at once on a second SIGTERM during the drain', async () => {
    // A drain far longer than the test's timeout: only the second signal can end it in time.
    const worker = await readyWorker('600');
    worker.kill('SIGTERM');
    await worker.waitFor(isDraining, 'draining line');
    worker.kill('SIGTERM');
    assert.equal(await worker.exit, 143);
    assert.ok(worker.logs.some((l) => l.message.startsWith('second SIGTERM: exiting now')));
    assert.ok(!worker.logs.some(isDrainOver));
  });
});
