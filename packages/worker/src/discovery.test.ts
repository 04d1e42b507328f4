// Issue 11, in process, against real local stores: discovery (APX_POLICIES unset) reads a
// bounded amount (names, policies, time), each refusal is reported and counted once however
// often it is retried, junk never holds readiness hostage (configured policies keep the strict
// rule), unknown versions beside an admitted one are counted once, every runbook metric exists
// from start, and special files in the store or the trust repository never hang the worker.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PublicKey, sha256Hex } from '@apx/core';
import { bindingBundle, policyModule, signatureFile } from '@apx/core/testing';
import { publishArtifact } from '@apx/storage';
import { type TestRepository, testRepository } from '@apx/trust/testing/repo';
import { resolveConfig } from './config.js';
import { type ArtifactSource, listingOf } from './source.js';
import { type RunningWorker, startWorker, type WorkerDeps } from './worker.js';

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });

interface Run {
  worker: RunningWorker;
  logs: Array<Record<string, unknown>>;
  store: string;
}

/** A store directory with a trusted key beside it (keys/cosign.pub, runbook mode). */
async function workspace(): Promise<{ dir: string; store: string; put(ref: string, signed?: boolean): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'apx-discovery-'));
  await mkdir(join(dir, 'keys'));
  await writeFile(join(dir, 'keys', 'cosign.pub'), signer.publicKey.export({ type: 'spki', format: 'pem' }));
  const store = join(dir, 'store');
  await mkdir(store);
  return {
    dir,
    store,
    async put(ref, signed = true) {
      const [id, version] = ref.split('@') as [string, string];
      const bytes = policyModule(id, version);
      await writeFile(join(store, `${ref}.wasm`), bytes);
      if (signed) await writeFile(join(store, `${ref}.wasm.sig`), signatureFile(bytes, signer.privateKey));
    },
  };
}

async function run(dir: string, env: Record<string, string> = {}, deps: Partial<WorkerDeps> = {}): Promise<Run> {
  const logs: Array<Record<string, unknown>> = [];
  const store = join(dir, 'store');
  const { config, warnings } = resolveConfig({ APX_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_STORE: store, ...env });
  const worker = await startWorker(config, warnings, {
    env: {},
    cwd: dir,
    retryMinMs: 5,
    logDestination: { write: (line: string) => logs.push(JSON.parse(line)) },
    ...deps,
  });
  return { worker, logs, store };
}

async function metric(w: RunningWorker, name: string): Promise<number> {
  const text = await (await fetch(`${w.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) total += Number(line.split(' ').pop());
  return total;
}

async function readyz(w: RunningWorker): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${w.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls (bounded: 20 s) until `probe` holds. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('discovery: bounded, reported once, never held hostage', () => {
  const dirs: string[] = [];
  const workers: RunningWorker[] = [];
  const start = async (dir: string, env?: Record<string, string>, deps?: Partial<WorkerDeps>) => {
    const r = await run(dir, env, deps);
    workers.push(r.worker);
    return r;
  };
  const ws = async () => {
    const w = await workspace();
    dirs.push(w.dir);
    return w;
  };
  after(async () => {
    for (const w of workers) await w.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('every runbook metric exists from start at 0, and an empty store says why it is not ready', async () => {
    const w = await ws();
    const { worker, logs } = await start(w.dir);
    const text = await (await fetch(`${worker.url}/metrics`)).text();
    for (const series of [
      'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"} 0',
      'apx_artifacts_verification_failures_total{reason="ARTIFACT_NOT_WASM"} 0',
      'apx_artifacts_verification_failures_total{reason="NOT_A_FILE"} 0',
      'apx_artifacts_unsigned_blocked_total 0',
      'apx_artifacts_unknown_versions_total 0',
    ]) {
      assert.ok(text.split('\n').includes(series), `${series} in /metrics`);
    }
    const ready = await readyz(worker);
    assert.equal(ready.status, 503);
    const reason = `no policy found: the store ${w.store} holds no artifact (<policy-id>@<semver>.wasm); publish one (apx publish) or fix APX_STORE`;
    assert.equal(ready.body.reason, reason);
    assert.ok(logs.some((l) => l.message === `not ready, no policy serves: ${reason}` && l.severity === 'ERROR'));
  });

  it('a refusal counts and logs once however often it is retried; other bytes are another refusal', async () => {
    const w = await ws();
    await w.put('pb-good@1.0.0');
    await w.put('pb-junk@1.0.0', false);
    const { worker, logs } = await start(w.dir);
    assert.equal(worker.policies.get('pb-good')?.refText, 'pb-good@1.0.0');
    await until(
      'six attempts',
      async () => (await metric(worker, 'apx_policy_load_failures_total{reason="SIGNATURE_MISSING"}')) >= 6,
    );
    const refusals = () => logs.filter((l) => l.policy_ref === 'pb-junk@1.0.0');
    assert.equal(refusals().length, 1);
    assert.equal(refusals()[0]?.severity, 'WARNING');
    assert.equal(await metric(worker, 'apx_artifacts_unsigned_blocked_total'), 1);
    assert.equal(logs.filter((l) => String(l.message).includes('retrying')).length, 0, 'retries are DEBUG lines');
    // Junk does not hold readiness in discovery: refused, reported, listed as such.
    const ready = await readyz(worker);
    assert.equal(ready.status, 200);
    assert.deepEqual(
      (ready.body.policies as Array<Record<string, unknown>>).find((p) => p.policy === 'pb-junk'),
      {
        policy: 'pb-junk',
        ready: false,
        refused: true,
        error:
          'artifact verification failed for pb-junk@1.0.0: signature file not found: pb-junk@1.0.0.wasm.sig (strict mode enabled)',
      },
    );
    // Other unsigned bytes under the same name: a distinct refusal, reported and counted once more.
    await writeFile(join(w.store, 'pb-junk@1.0.0.wasm'), Buffer.from('other junk'));
    for (let i = 0; i < 3; i++) await worker.policies.retryWaiting(); // three attempts now, backoff reset
    assert.equal(refusals().length, 2);
    assert.equal(await metric(worker, 'apx_artifacts_unsigned_blocked_total'), 2);
  });

  it('configured policies (APX_POLICIES) keep the strict rule: a refused one holds readiness', async () => {
    const w = await ws();
    await w.put('pb-good@1.0.0');
    await w.put('pb-junk@1.0.0', false);
    const { worker } = await start(w.dir, { APX_POLICIES: 'pb-good,pb-junk' });
    const ready = await readyz(worker);
    assert.equal(ready.status, 503);
    assert.equal(
      ready.body.reason,
      '1 of 2 policies not ready: pb-junk (SIGNATURE_MISSING: signature file not found: pb-junk@1.0.0.wasm.sig (strict mode enabled))',
    );
  });

  it('unknown versions beside an admitted one are logged and counted once each, over any number of passes', async () => {
    const w = await ws();
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await w.put(`pb-good@${v}`);
    const { worker, logs } = await start(w.dir, { ALLOWED_POLICY_VERSIONS: '1.0.0' });
    for (let pass = 0; pass < 3; pass++) await worker.refresh();
    assert.equal(worker.policies.get('pb-good')?.refText, 'pb-good@1.0.0');
    assert.deepEqual(
      logs.filter((l) => l.reason === 'VERSION_NOT_ALLOWED').map((l) => [l.severity, l.message]),
      ['1.1.0', '1.2.0'].map((v) => [
        'WARNING',
        `unknown version in the store, not loaded: pb-good@${v}: policy version ${v} not in allowed list: [1.0.0]`,
      ]),
    );
    assert.equal(await metric(worker, 'apx_artifacts_unknown_versions_total'), 2);
  });

  it('bounds a listing in names and policies, says so once, and serves signed policies first', async () => {
    const w = await ws();
    await w.put('pb-a@1.0.0', false); // unsigned: after the signed ones, whatever its name
    for (const id of ['pb-b', 'pb-c', 'pb-d']) await w.put(`${id}@1.0.0`);
    const { worker, logs } = await start(w.dir, {}, { discovery: { maxObjects: 6, maxPolicies: 2 } });
    for (let pass = 0; pass < 2; pass++) await worker.refresh();
    // 7 objects, 6 considered (pb-a, pb-b's two, pb-c's two, pb-d.wasm); 4 policies, 2 served.
    assert.deepEqual(
      worker.policies.list().map((s) => s.policyId),
      ['pb-b', 'pb-c'],
    );
    assert.equal(await metric(worker, 'apx_store_objects_ignored{reason="over_object_cap"}'), 1);
    assert.equal(await metric(worker, 'apx_store_objects_ignored{reason="over_policy_cap"}'), 2);
    const objects = logs.filter((l) => l.max_objects === 6);
    assert.equal(objects.length, 1, 'said once, not per pass');
    assert.match(String(objects[0]?.message), /lists 7 objects, more than 6: only the first 6 by name are considered/);
    assert.equal(logs.filter((l) => l.max_policies === 2).length, 1);
    assert.equal((await readyz(worker)).status, 200);
  });

  it('a listing that never answers fails at its deadline; the worker starts, answers and says why', async () => {
    const w = await ws();
    const hanging: ArtifactSource = {
      url: 'memory://hanging',
      fetch: async () => undefined,
      versions: async () => [],
      getObject: async () => undefined,
      listing: () => new Promise(() => undefined),
    };
    const { worker, logs } = await start(w.dir, {}, { openSource: async () => hanging, discovery: { timeoutMs: 50 } });
    const line = logs.find((l) => String(l.message).startsWith('cannot list policies in the store: '));
    assert.equal(
      line?.message,
      'cannot list policies in the store: store unavailable: memory://hanging: listing took longer than 0.05 s',
    );
    assert.equal((await fetch(`${worker.url}/healthz`)).status, 200);
    const ready = await readyz(worker);
    assert.equal(ready.status, 503);
    assert.match(String(ready.body.reason), /^no policy found: cannot list the store memory:\/\/hanging: /);
  });

  it('a download that never ends fails at its deadline; the worker answers and retries', async () => {
    const w = await ws();
    const stuck: ArtifactSource = {
      url: 'memory://stuck',
      fetch: () => new Promise(() => undefined),
      versions: async () => ['1.0.0'],
      getObject: async () => undefined,
      listing: async () => listingOf([{ policyId: 'pb-stuck', version: '1.0.0' }]),
    };
    const { worker, logs } = await start(w.dir, {}, { openSource: async () => stuck, fetchTimeoutMs: 50 });
    const line = logs.find((l) => l.policy_ref === 'pb-stuck@1.0.0');
    assert.equal(line?.reason, 'STORE_UNAVAILABLE');
    assert.equal(
      line?.message,
      'artifact verification failed for pb-stuck@1.0.0: store unavailable: memory://stuck: downloading pb-stuck@1.0.0.wasm took longer than 0.05 s',
    );
    assert.equal((await fetch(`${worker.url}/healthz`)).status, 200);
    const ready = await readyz(worker);
    assert.equal(ready.status, 503, 'an unreachable store holds readiness: it is not a verdict on the artifact');
    assert.match(String(ready.body.reason), /^1 of 1 policies not ready: pb-stuck \(STORE_UNAVAILABLE: /);
  });

  it('a FIFO as a signature is refused with a message and never hangs the load', { timeout: 30_000 }, async () => {
    const w = await ws();
    await w.put('pb-good@1.0.0');
    await w.put('pb-fifo@1.0.0', false);
    execFileSync('mkfifo', [join(w.store, 'pb-fifo@1.0.0.wasm.sig')]);
    const { worker, logs } = await start(w.dir);
    const line = logs.find((l) => l.policy_ref === 'pb-fifo@1.0.0');
    assert.equal(line?.reason, 'NOT_A_FILE');
    assert.equal(
      line?.message,
      `artifact verification failed for pb-fifo@1.0.0: not a regular file: pb-fifo@1.0.0.wasm.sig in ${w.store} is a named pipe (FIFO)`,
    );
    assert.equal(await metric(worker, 'apx_artifacts_verification_failures_total{reason="NOT_A_FILE"}'), 1);
    assert.equal((await readyz(worker)).status, 200);
  });
});

describe('discovery with a trust repository: unknown versions, and a FIFO as trust metadata', () => {
  let t: TestRepository;
  let config: ReturnType<typeof resolveConfig>['config'];
  let deps: WorkerDeps;
  const logs: Array<Record<string, unknown>> = [];
  let worker: RunningWorker | undefined;
  const approvers = () => [...t.keys.production.slice(0, 2), ...t.online];

  before(async () => {
    t = await testRepository();
    const repo = await t.open();
    await repo.commit(repo.setSigner('production', { add: PublicKey.fromKeyObject(signer.publicKey) }), approvers());
    for (const version of ['1.0.0', '1.1.0', '1.2.0']) {
      const artifact = policyModule('pb-test', version);
      await publishArtifact(t.store, {
        ref: `pb-test@${version}`,
        artifact,
        signature: signatureFile(artifact, signer.privateKey),
        bundle: bindingBundle(artifact, { policyId: 'pb-test', version, environment: 'production' }, signer.privateKey),
      });
      if (version === '1.0.0') {
        const r = await t.open();
        const ref = { policyId: 'pb-test', version };
        await r.commit(r.approve('production', { ref, length: artifact.length, sha256: sha256Hex(artifact) }), approvers());
      }
    }
    const rootFile = join(t.dir, 'root.json');
    await writeFile(rootFile, (await t.store.get('tuf/1.root.json')) as Buffer);
    ({ config } = resolveConfig({
      APX_ENV: 'production',
      APX_STORE: join(t.dir, 'store'),
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: rootFile,
      APX_STATE_DIR: join(t.dir, 'state'),
      ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0,1.2.0',
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
    }));
    deps = { env: {}, cwd: t.dir, retryMinMs: 5, logDestination: { write: (line: string) => logs.push(JSON.parse(line)) } };
    worker = await startWorker(config, [], deps);
  });
  after(async () => {
    await worker?.stop();
    await t?.cleanup();
  });

  it('versions in the store the environment does not approve are logged and counted once each', async () => {
    for (let pass = 0; pass < 3; pass++) await worker?.refresh();
    assert.equal(worker?.policies.get('pb-test')?.refText, 'pb-test@1.0.0');
    assert.deepEqual(
      logs.filter((l) => l.reason === 'NOT_APPROVED').map((l) => l.message),
      ['1.1.0', '1.2.0'].map(
        (v) =>
          `unknown version in the store, not loaded: pb-test@${v}: not approved for production: pb-test@${v} is not a target of the production targets role`,
      ),
    );
    assert.equal(await metric(worker as RunningWorker, 'apx_artifacts_unknown_versions_total'), 2);
  });

  it('a FIFO as tuf/timestamp.json is refused with a message; the worker keeps serving, and restarts', {
    timeout: 60_000,
  }, async () => {
    const timestamp = join(t.dir, 'store', 'tuf', 'timestamp.json');
    await rm(timestamp);
    execFileSync('mkfifo', [timestamp]);
    const from = logs.length;
    await worker?.refresh();
    const refused = logs.slice(from).find((l) => String(l.message).startsWith('trust repository refused'));
    assert.equal(refused?.reason, 'STORE_FAILED');
    assert.match(
      String(refused?.message),
      /: trust metadata tuf\/timestamp\.json: not a regular file: tuf\/timestamp\.json in \S+ is a named pipe \(FIFO\)$/,
    );
    assert.equal(worker?.policies.get('pb-test')?.refText, 'pb-test@1.0.0');
    assert.equal((await fetch(`${worker?.url}/healthz`)).status, 200);
    // A restart with the FIFO in place: it starts, says why, and serves what it verified before.
    await worker?.stop();
    worker = await startWorker(config, [], deps);
    assert.equal(worker.policies.get('pb-test')?.refText, 'pb-test@1.0.0');
    assert.equal((await fetch(`${worker.url}/healthz`)).status, 200);
  });
});
