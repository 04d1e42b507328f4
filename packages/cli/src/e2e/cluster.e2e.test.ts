// The multi-process worker (APX_WORKERS=2, issue 17): one verifying primary and two serving
// processes sharing one port, through a signing-key rotation and a revocation done with the
// real `apx trust` commands. Each request goes on a new connection, so node:cluster spreads
// them over both serving processes; which process answered is read from the sampled decision
// log (worker_pid). No timing is asserted: every wait is a bounded poll.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { policyModule } from '@apx/core/testing';
import { apx, assertGrpcAllows, ok as harnessOk, WorkerProcess, Workspace } from './harness.js';
import { ok, PAYMENTS_GET, poll, TrustFixture, type TrustWorker } from './trust-harness.js';

/** A request the payments policy allows without an identity, hence without a rate limit. */
const HEALTH = { ...PAYMENTS_GET, path: '/healthz', headers: {} };

interface Answer {
  status: number;
  digest: string | undefined;
  policy: string | undefined;
}

/** POST /v1/decide on a connection of its own (no keep-alive: the next request may reach the other process). */
function decideOnce(url: string, policy = 'pb-pay-v1'): Promise<Answer> {
  const body = JSON.stringify({ policy, request: HEALTH });
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/decide`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', connection: 'close' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => {
          const json = JSON.parse(text) as { digest?: string; policy?: string };
          resolve({ status: res.statusCode ?? 0, digest: json.digest, policy: json.policy });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sequential decisions until stopped: every answer, in the order they came. */
function traffic(url: string) {
  const answers: Answer[] = [];
  let running = true;
  const done = (async () => {
    while (running) answers.push(await decideOnce(url));
  })();
  return {
    answers,
    async stop() {
      running = false;
      await done;
      return answers;
    },
  };
}

/** The answers in runs, for failure messages: `12×pb-pay-v1@1.0.0, 3×503, ...`. */
function runs(answers: Answer[]): string {
  const out: Array<[string, number]> = [];
  for (const a of answers) {
    const what = a.status === 200 ? (a.policy ?? '?') : String(a.status);
    const last = out.at(-1);
    if (last && last[0] === what) last[1]++;
    else out.push([what, 1]);
  }
  return out.map(([what, n]) => `${n}×${what}`).join(', ');
}

/** Sum of every sample of a metric (all label sets) in an exposition text. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.split(' ').pop());
  return total;
}

describe('e2e: APX_WORKERS=2 serves one consistent set of policies', () => {
  let f: TrustFixture;
  before(async () => {
    f = await TrustFixture.create(['signer2']);
  });
  after(async () => {
    await f?.cleanup();
  });

  it('through a signer rotation and a revocation: no process serves a version after another stopped serving it; /metrics sums the decisions of both processes', async () => {
    const r = f.clone();
    const w: TrustWorker = await r.worker({ APX_WORKERS: '2', APX_DECISION_LOG_SAMPLE: '1' });
    await w.loaded('pb-pay-v1@1.0.0');
    const pids = () => new Set(w.lines(0, (l) => l.event === 'decision').map((l) => l.worker_pid));
    // Both serving processes answer (new connections are spread between them).
    let warmUp = 0;
    await poll('answers from both serving processes', async () => {
      const a = await decideOnce(w.url);
      assert.equal(a.status, 200, 'a decision');
      warmUp++;
      return pids().size >= 2 ? true : undefined;
    });
    const load = traffic(w.url);
    try {
      // Key rotation: a second signer, 1.1.0 signed by it and approved, then the first signer removed.
      ok(await r.trust(['signer', 'add', '--env', 'production', 'keys/signer2.pub']));
      r.publish(await f.compile('1.1.0', { key: 'signer2' }));
      await r.approve('pb-pay-v1@1.1.0');
      await poll('1.1.0 served', () => (load.answers.some((a) => a.policy === 'pb-pay-v1@1.1.0') ? true : undefined));
      ok(await r.trust(['signer', 'remove', '--env', 'production', f.keyId('signer')]));
      // Revocation of the version serving; with the first signer gone nothing else can serve.
      await r.revoke('pb-pay-v1@1.1.0', 'test: withdrawn');
      await poll('the revoked version refused', () =>
        load.answers.some((a) => a.policy === 'pb-pay-v1@1.1.0') && load.answers.at(-1)?.status === 503 ? true : undefined,
      );
      // More requests after that refusal, so every process has answered since.
      const refusedAt = load.answers.length;
      await poll('requests after the refusal', () => (load.answers.length > refusedAt + 40 ? true : undefined));
    } finally {
      await load.stop();
    }
    const answers = load.answers;
    const digestOf = (ref: string) => answers.find((a) => a.policy === ref)?.digest;
    const v100 = digestOf('pb-pay-v1@1.0.0');
    const v110 = digestOf('pb-pay-v1@1.1.0');
    assert.ok(v100 && v110 && v100 !== v110, `both versions served: ${runs(answers)}`);
    // The rotation: until some process answered with 1.1.0 every answer was 1.0.0; then every
    // answer was 1.1.0 until some process stopped serving it (the revocation), and no process
    // served it again. 1.1.0's answers are one unbroken run.
    const firstNew = answers.findIndex((a) => a.digest === v110);
    const revokedAt = answers.findIndex((a, i) => i > firstNew && a.digest !== v110);
    assert.ok(revokedAt > firstNew, `1.1.0 stopped serving: ${runs(answers)}`);
    assert.ok(
      answers.slice(0, firstNew).every((a) => a.digest === v100),
      `1.0.0 until 1.1.0 served: ${runs(answers)}`,
    );
    assert.ok(
      answers.slice(firstNew, revokedAt).every((a) => a.digest === v110),
      `an old version served after the new one: ${runs(answers)}`,
    );
    assert.equal(
      answers.slice(revokedAt).filter((a) => a.digest === v110).length,
      0,
      `the revoked digest served after a process had stopped serving it: ${runs(answers)}`,
    );
    // Once any process refused (nothing left to serve), every later request to every process is refused.
    // 1.0.0 is still approved but signed by the removed signer: nothing falls back to it (not
    // even from a loader's memory), so the first answer that is not 1.1.0 is a refusal.
    const firstRefusal = answers.findIndex((a) => a.status !== 200);
    assert.equal(firstRefusal, revokedAt, `a version of the removed signer served after the revocation: ${runs(answers)}`);
    assert.ok(
      answers.slice(firstRefusal).every((a) => a.status === 503 && a.digest === undefined),
      `a request served after another was refused: ${runs(answers)}`,
    );
    assert.ok(answers.length - firstRefusal > 40);
    // Both processes answered during the run.
    assert.ok(pids().size >= 2, `answers came from ${pids().size} process(es)`);
    // /metrics (answered by either process) counts every decision of both.
    const decided = answers.filter((a) => a.status === 200).length;
    const text = (await w.get('/metrics')).text;
    assert.equal(sum(text, 'apx_decisions_total'), warmUp + decided);
    const policyInfo = text.split('\n').filter((l) => l.startsWith('apx_policy_info{'));
    assert.deepEqual(policyInfo, [], 'nothing serves after the revocation, and the info gauge says so once');
    // Unloads are counted by the verifying process alone: once each, not once per serving process.
    const unloads = w.lines(0, (l) => l.message.startsWith('policy unloaded: revoked')).length;
    assert.ok(unloads >= 1);
    assert.equal(sum(text, 'apx_artifacts_revoked_blocked_total'), unloads);
    // SIGTERM drains the whole group and exits 0.
    await w.stop();
  });

  it('a serving process that dies is replaced and serves the current set; gRPC ext_authz on the shared port; SIGTERM drains every process and exits 0', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments());
    const w = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      APX_POLICIES: 'pb-pay-v1',
      APX_WORKERS: '2',
      APX_GRPC_PORT: '0',
      APX_DECISION_LOG_SAMPLE: '1',
      APX_DRAIN_SECONDS: '1',
    });
    await w.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'policy loaded');
    const pids = () => new Set(w.logs.filter((l) => l.event === 'decision').map((l) => l.worker_pid as number));
    const answersFrom = async (what: string, enough: () => boolean) => {
      const seen: Answer[] = [];
      await poll(what, async () => {
        seen.push(await decideOnce(w.url));
        return enough() ? true : undefined;
      });
      return seen;
    };
    await answersFrom('answers from both serving processes', () => pids().size >= 2);
    const [victim, survivor] = [...pids()] as [number, number];
    const digest = (await decideOnce(w.url)).digest;
    process.kill(victim, 'SIGKILL');
    await w.waitFor((l) => l.message.startsWith(`serving process ${victim} exited`), 'the exit noticed');
    // The replacement answers, with the set the others serve, once it holds it.
    const seen = await answersFrom('an answer from the replacement', () =>
      [...pids()].some((p) => p !== victim && p !== survivor),
    );
    const since = seen.slice(seen.findIndex((a) => a.status === 200));
    assert.ok(
      since.every((a) => a.status === 200 && a.digest === digest),
      `every answer from the survivor and the replacement is the serving digest: ${runs(seen)}`,
    );
    assert.equal((await w.get('/readyz')).status, 200);
    // Envoy ext_authz over gRPC, on the port the serving processes share.
    await assertGrpcAllows(w);
    // SIGTERM: every serving process drains and closes, then the worker exits 0.
    assert.equal(await w.stop(), 0);
    const drained = new Set(w.logs.filter((l) => l.message.startsWith('drain over: ')).map((l) => l.worker_pid));
    assert.equal(drained.size, 2, 'both serving processes drained');
  });

  it('a decision past its deadline in one serving process unloads the policy in every process; the other policy keeps serving', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    mkdirSync(store, { recursive: true });
    const artifact = ws.path('store', 'pb-loop@1.0.0.wasm');
    writeFileSync(artifact, policyModule('pb-loop', '1.0.0', { spin: Number.POSITIVE_INFINITY }));
    harnessOk(apx(ws.dir, ['sign', artifact, '--version', '1.0.0']));
    ws.stage(store, ws.compilePayments());
    const w = await WorkerProcess.start(ws.dir, {
      APX_STORE: store,
      APX_WORKERS: '2',
      APX_DECISION_DEADLINE_MS: '100',
      APX_DECISION_LOG_SAMPLE: '1',
    });
    try {
      await w.waitFor((l) => l.message === 'policy loaded: pb-loop@1.0.0', 'pb-loop loaded');
      await w.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'pb-pay-v1 loaded');
      const looped = await w.decide('pb-loop', PAYMENTS_GET);
      assert.equal(looped.body.status, 503);
      assert.match(String(looped.body.reason), /deadline/);
      await w.waitFor((l) => l.reason === 'DECISION_DEADLINE_EXCEEDED', 'unload line');
      await w.waitFor((l) => l.message.startsWith('every serving process switched to policy set'), 'the switch');
      // From now on every process refuses pb-loop without running it, and serves pb-pay-v1.
      const from = w.logs.length;
      const refusedBy = () =>
        new Set(
          w.logs
            .slice(from)
            .filter((l) => l.event === 'decision' && l.policy === 'pb-loop' && l.outcome === 'error' && l.status === 503)
            .map((l) => l.worker_pid),
        );
      const answers: number[] = [];
      await poll('refusals from both serving processes', async () => {
        answers.push((await decideOnce(w.url, 'pb-loop')).status);
        // Now and then the other policy (connections alternate between the processes, so a
        // strict alternation of policies would send each policy to one process only).
        if (answers.length % 3 === 0) assert.equal((await decideOnce(w.url)).status, 200, 'pb-pay-v1 keeps serving');
        return refusedBy().size >= 2 || answers.length > 200 ? true : undefined;
      });
      assert.ok(
        answers.every((s) => s === 503),
        `pb-loop refused (not loaded) everywhere: ${answers.join(',')}`,
      );
      assert.equal(await w.metric('apx_policy_deadline_exceeded_total'), 1, 'stopped once, in one process');
    } finally {
      assert.equal(await w.stop(), 0);
    }
  });
});
