// Issue 11 through `apx worker` processes: a store full of junk, special files and mistakes.
// What a worker reads is bounded (count, bytes, time), each refusal is reported once however
// often it is retried, a FIFO never hangs a load, and a worker that cannot serve anything says
// so at start (one line naming the problem and the fix) and in /readyz.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

const JUNK = 3000;
/** The worker's default discovery cap (DEFAULT_DISCOVERY_LIMITS.maxPolicies). */
const MAX_POLICIES = 1000;

/** Resident memory of a process, in bytes (Linux /proc). */
function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1]) * 1024;
}

/** Polls (bounded: 60 s) until `probe` holds; fails naming what it waited for. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

interface Readyz {
  status: string;
  reason?: string;
  policies: Array<{ policy: string; ready: boolean; refused?: boolean; error: string | null }>;
}

describe('e2e: a hostile or mistaken store (issue 11)', () => {
  const ws = new Workspace();
  const artifact = ws.compilePayments();
  after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const start = (name: string, env: Record<string, string>) =>
    WorkerProcess.start(ws.dir, { APX_STATE_DIR: ws.path(`state-${name}`), ...env });

  it('3,000 one-byte unsigned files: memory, /healthz and the log stay bounded; the signed policy serves and the worker is ready', async () => {
    const baselineStore = ws.path('baseline');
    ws.stage(baselineStore, artifact);
    const junkStore = ws.path('junk');
    ws.stage(junkStore, artifact);
    for (let i = 0; i < JUNK; i++) writeFileSync(join(junkStore, `junk-${i}@1.0.0.wasm`), 'x');
    const [baseline, junk] = await Promise.all([
      start('baseline', { APX_STORE: baselineStore }),
      start('junk', { APX_STORE: junkStore }),
    ]);
    try {
      await baseline.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0');
      // Signed policies are taken up first: junk, whatever its names, cannot push them past the cap.
      await junk.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0');
      const junkServed = MAX_POLICIES - 1;
      // The first attempt and two retries of every junk policy within the cap, each refused.
      await until('three attempts of each junk policy', async () => {
        return (await junk.metric('apx_policy_load_failures_total{reason="SIGNATURE_MISSING"}')) >= 3 * junkServed;
      });

      // The log: one line per distinct refusal and none per retry, the cap said once.
      const refusals = junk.logs.filter((l) => l.reason === 'SIGNATURE_MISSING');
      assert.equal(refusals.length, junkServed);
      assert.ok(junk.logs.length <= junkServed + 10, `${junk.logs.length} log lines`);
      const cap = junk.logs.filter((l) => l.max_policies === MAX_POLICIES);
      assert.equal(cap.length, 1);
      assert.equal(cap[0]?.severity, 'WARNING');
      assert.match(
        String(cap[0]?.message),
        /^3001 policies found in \S+, more than 1000: 2001 not served; set APX_POLICIES to the policies to serve$/,
      );
      // The metrics: each distinct unsigned artifact once, the policies past the cap as a gauge.
      assert.equal(await junk.metric('apx_artifacts_unsigned_blocked_total'), junkServed);
      assert.equal(await junk.metric('apx_store_objects_ignored{reason="over_policy_cap"}'), JUNK + 1 - MAX_POLICIES);

      // Memory, against a worker serving the same policy from a clean store (before the fix:
      // 70 MB to 780 MB for this store, most of it one full listing per policy at once).
      const growth = rss(junk.pid) - rss(baseline.pid);
      assert.ok(growth < 200 * 2 ** 20, `the junk worker holds ${Math.round(growth / 2 ** 20)} MiB more than the baseline`);

      // Liveness, readiness (junk is refused and reported, never fatal for the others), decisions.
      assert.equal((await junk.get('/healthz')).status, 200);
      const ready = await junk.get('/readyz');
      assert.equal(ready.status, 200, JSON.stringify(ready.body).slice(0, 500));
      const body = ready.body as Readyz;
      assert.deepEqual(
        body.policies.find((p) => p.policy === 'junk-0'),
        {
          policy: 'junk-0',
          ready: false,
          refused: true,
          error:
            'artifact verification failed for junk-0@1.0.0: signature file not found: junk-0@1.0.0.wasm.sig (strict mode enabled)',
        },
      );
      assert.equal((await junk.decide('pb-pay-v1', PAYMENTS_GET)).body.allow, true);
    } finally {
      await Promise.all([baseline.stop(), junk.stop()]);
    }
  });

  it('FIFOs as artifacts are refused with a message, never hang a load; the worker keeps answering', async () => {
    const store = ws.path('fifo');
    ws.stage(store, artifact);
    // More than libuv's 4 threads: blocking opens of them would stall every file read after.
    for (let i = 0; i < 6; i++) execFileSync('mkfifo', [join(store, `pb-fifo-${i}@1.0.0.wasm`)]);
    const worker = await start('fifo', { APX_STORE: store });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0');
      for (let i = 0; i < 6; i++) {
        const line = await worker.waitFor((l) => l.policy_ref === `pb-fifo-${i}@1.0.0`, `refusal of pb-fifo-${i}`);
        assert.equal(line.severity, 'ERROR');
        assert.equal(line.reason, 'NOT_A_FILE');
        assert.equal(
          line.message,
          `artifact verification failed for pb-fifo-${i}@1.0.0: not a regular file: pb-fifo-${i}@1.0.0.wasm in ${store} is a named pipe (FIFO)`,
        );
      }
      assert.equal(await worker.metric('apx_artifacts_verification_failures_total{reason="NOT_A_FILE"}'), 6);
      assert.equal((await worker.get('/healthz')).status, 200);
      assert.equal((await worker.get('/readyz')).status, 200);
      assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.allow, true);
    } finally {
      await worker.stop();
    }
  });

  /** A worker that cannot serve anything: one start line with the fix, and /readyz's reason. */
  async function expectNotServing(name: string, env: Record<string, string>, reason: RegExp) {
    const worker = await start(name, env);
    try {
      const line = await worker.waitFor((l) => l.message.startsWith('not ready, no policy serves: '), 'the not-ready line');
      assert.equal(line.severity, 'ERROR');
      assert.match(line.message.slice('not ready, no policy serves: '.length), reason);
      const ready = await worker.get('/readyz');
      assert.equal(ready.status, 503);
      assert.match(String((ready.body as Readyz).reason), reason);
      assert.equal((await worker.get('/healthz')).status, 200);
      return worker;
    } catch (err) {
      await worker.stop();
      throw err;
    }
  }

  it('a store that does not exist is said at start and in /readyz', async () => {
    const missing = ws.path('no-such-store');
    const worker = await expectNotServing(
      'missing',
      { APX_STORE: missing },
      new RegExp(
        `^no policy found: the directory ${missing} does not exist \\(APX_STORE=${missing}\\); publish artifacts there \\(apx publish\\) or fix APX_STORE$`,
      ),
    );
    await worker.stop();
  });

  it('a store of mis-named files only is said at start (which files, how to name them) and in /readyz', async () => {
    const store = ws.path('misnamed');
    mkdirSync(store, { recursive: true });
    copyFileSync(artifact, join(store, 'artifact.wasm'));
    copyFileSync(`${artifact}.sig`, join(store, 'artifact.wasm.sig'));
    copyFileSync(artifact, join(store, 'policy.wasm'));
    const worker = await expectNotServing(
      'misnamed',
      { APX_STORE: store },
      /^no policy found: the store \S+ holds 2 \.wasm file\(s\) but none named <policy-id>@<semver>\.wasm \(artifact\.wasm, policy\.wasm\); publish artifacts under that name \(apx compile writes it\) or set APX_POLICIES$/,
    );
    try {
      const warning = await worker.waitFor((l) => l.misnamed === 2, 'the misnamed warning');
      assert.equal(warning.severity, 'WARNING');
      assert.match(
        warning.message,
        /holds 2 \.wasm object\(s\) not named <policy-id>@<semver>\.wasm, never loaded: artifact\.wasm, policy\.wasm;/,
      );
      assert.equal(await worker.metric('apx_store_objects_ignored{reason="misnamed"}'), 2);
    } finally {
      await worker.stop();
    }
  });

  it('a missing public key file is said at start, with the fix, and in /readyz', async () => {
    const store = ws.path('nokey');
    ws.stage(store, artifact);
    const worker = await expectNotServing(
      'nokey',
      { APX_STORE: store, APX_PUBLIC_KEY: 'keys/absent.pub' },
      /^1 of 1 policies not ready: pb-pay-v1 \(PUBLIC_KEY_UNAVAILABLE: public key not available: keys\/absent\.pub \(file not found\)\)$/,
    );
    try {
      const line = worker.logs.find((l) => l.setting === 'APX_PUBLIC_KEY');
      assert.equal(line?.severity, 'ERROR');
      assert.match(
        String(line?.message),
        /^public key not available: keys\/absent\.pub \(file not found\): no artifact can be verified; set APX_PUBLIC_KEY to /,
      );
    } finally {
      await worker.stop();
    }
  });

  it('an unknown version beside an allowed one is logged once and counted in apx_artifacts_unknown_versions_total', async () => {
    const store = ws.path('unknown');
    ws.stage(store, artifact);
    ws.stage(store, ws.compilePayments('1.1.0'));
    const worker = await start('unknown', { APX_STORE: store, ALLOWED_POLICY_VERSIONS: '1.0.0', APX_RELOAD_INTERVAL: '1' });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0');
      const line = await worker.waitFor((l) => l.policy_ref === 'pb-pay-v1@1.1.0', 'the unknown version line');
      assert.equal(line.severity, 'WARNING');
      assert.equal(line.reason, 'VERSION_NOT_ALLOWED');
      assert.equal(
        line.message,
        'unknown version in the store, not loaded: pb-pay-v1@1.1.0: policy version 1.1.0 not in allowed list: [1.0.0]',
      );
      assert.equal(await worker.metric('apx_artifacts_unknown_versions_total'), 1);
      assert.equal((await worker.get('/readyz')).status, 200);
    } finally {
      await worker.stop();
    }
    // Every reload pass lists the store again: still one line and one count.
    assert.equal(worker.logs.filter((l) => l.policy_ref === 'pb-pay-v1@1.1.0').length, 1);
  });
});
