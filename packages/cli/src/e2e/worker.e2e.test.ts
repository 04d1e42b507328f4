// Issue 4 end to end, through the CLI and HTTP: compile, sign, publish to every backend,
// the worker loads and decides; then every rejection scenario of the runbook, each with
// its exact message, metric and log line, and nothing loaded.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';
import { startFakeGcs } from '@apx/storage/testing/gcs-fake';
import { closedPort, startProxy, type TestProxy } from '@apx/storage/testing/proxy';
import { registryMissing, startRegistry } from '@apx/storage/testing/registry';
import { apx, apxAsync, ok, PAYMENTS_GET, type Run, WorkerProcess, Workspace } from './harness.js';

const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

interface Backend {
  url: string;
  env: Record<string, string>;
  proxy?: TestProxy;
  cleanup(): Promise<void>;
}

async function s3Backend(): Promise<Backend> {
  type S3rver = { run(): Promise<{ port: number }>; close(): Promise<void> };
  const Ctor = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => S3rver;
  const server = new Ctor({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: tempDir('apx-e2e-s3-'),
    configureBuckets: [{ name: 'apx-artifacts' }],
  });
  const { port } = await server.run();
  const proxy = await startProxy(`http://127.0.0.1:${port}`, { conditionalCreates: true });
  return {
    url: `s3://apx-artifacts/policies?endpoint=${encodeURIComponent(proxy.url)}`,
    env: S3_ENV,
    proxy,
    cleanup: async () => {
      await proxy.close();
      await server.close();
    },
  };
}

const BACKENDS: Array<{ name: string; skip: string | false; open: (ws: Workspace) => Promise<Backend> }> = [
  { name: 'local directory', skip: false, open: async (ws) => ({ url: ws.path('store'), env: {}, cleanup: async () => {} }) },
  { name: 'S3 (AWS SDK v3 against s3rver)', skip: false, open: () => s3Backend() },
  {
    name: 'GCS (official client against a JSON API server)',
    skip: false,
    open: async () => {
      const gcs = await startFakeGcs(['apx-artifacts']);
      return { url: `gs://apx-artifacts/policies?endpoint=${encodeURIComponent(gcs.url)}`, env: {}, cleanup: () => gcs.close() };
    },
  },
  {
    name: 'OCI (Debian docker-registry)',
    skip: registryMissing(),
    open: async () => {
      const registry = await startRegistry();
      return { url: `oci+http://${registry.host}/apx`, env: {}, cleanup: () => registry.stop() };
    },
  },
];

describe('e2e: compile, sign, publish, and the worker loads and decides', () => {
  const ws = new Workspace();
  const artifact = ws.compilePayments();

  for (const backend of BACKENDS) {
    it(`through ${backend.name}`, { skip: backend.skip }, async () => {
      const store = await backend.open(ws);
      try {
        const published = ok(await apxAsync(ws.dir, ['publish', artifact, '--store', store.url], store.env));
        assert.match(published.stderr, /✓ Published: pb-pay-v1@1\.0\.0/);
        const worker = await WorkerProcess.start(ws.dir, { APX_STORE: store.url, APX_POLICIES: 'pb-pay-v1', ...store.env });
        try {
          await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
          assert.equal((await worker.get('/readyz')).status, 200);
          const allowed = await worker.decide('pb-pay-v1', PAYMENTS_GET);
          assert.equal(allowed.status, 200);
          assert.equal(allowed.body.allow, true);
          assert.equal(allowed.body.policy, 'pb-pay-v1@1.0.0');
          const denied = await worker.decide('pb-pay-v1', { ...PAYMENTS_GET, ip: '203.0.113.9' });
          assert.equal(denied.body.allow, false);
          assert.equal(denied.body.status, 403);
        } finally {
          await worker.stop();
        }
      } finally {
        await store.cleanup();
      }
    });
  }

  it('compile --publish signs and publishes in one step', () => {
    const store = ws.path('store-compile-publish');
    const source = join(ws.dir, 'payments-1.0.0.yaml');
    const r = ok(apx(ws.dir, ['compile', '--out', 'build2', '--publish', store, source]));
    assert.match(r.stdout, /✓ Compiled: build2\/pb-pay-v1@1\.0\.0\.wasm\n✓ Signed: {4}build2\/pb-pay-v1@1\.0\.0\.wasm\.sig/);
    assert.deepEqual(readFileSync(join(store, 'pb-pay-v1@1.0.0.wasm')), readFileSync(artifact));
  });
});

interface Scenario {
  name: string;
  /** Puts the store in the state under test; returns the store URL and extra worker env. */
  prepare(ws: Workspace, artifact: string): Promise<{ url: string; env?: Record<string, string>; cleanup?: () => Promise<void> }>;
  ref?: string;
  message: string | RegExp;
  metric: string;
  severity: 'ERROR' | 'WARNING';
  /** The `security_event` the log line carries, if any. */
  securityEvent?: string;
}

function signBlobWith(ws: Workspace, file: string, key = 'keys/cosign.key'): Run {
  return ok(apx(ws.dir, ['sign-blob', '--key', key, '--output-signature', `${file}.sig`, file]));
}

const SCENARIOS: Scenario[] = [
  {
    name: 'a flipped byte',
    async prepare(ws, artifact) {
      const staged = ws.stage(ws.path('s-flip'), artifact);
      const bytes = readFileSync(staged);
      bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 0x01;
      writeFileSync(staged, bytes);
      return { url: ws.path('s-flip') };
    },
    message:
      'artifact verification failed for pb-pay-v1@1.0.0: signature verification failed: ECDSA signature verification failed',
    metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
    severity: 'ERROR',
    securityEvent: 'artifact_tampering',
  },
  {
    name: 'a missing signature (strict mode)',
    async prepare(ws, artifact) {
      ws.stage(ws.path('s-unsigned'), artifact, ['', '.sigstore.json']);
      return { url: ws.path('s-unsigned') };
    },
    message:
      'artifact verification failed for pb-pay-v1@1.0.0: signature file not found: pb-pay-v1@1.0.0.wasm.sig (strict mode enabled)',
    metric: 'apx_artifacts_unsigned_blocked_total',
    severity: 'WARNING',
  },
  {
    name: 'a version not in the allow-list',
    async prepare(ws) {
      ws.stage(ws.path('s-version'), ws.compilePayments('1.2.0'));
      return { url: ws.path('s-version'), env: { ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0' } };
    },
    ref: 'pb-pay-v1@1.2.0',
    message: 'artifact verification failed for pb-pay-v1@1.2.0: policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]',
    metric: 'apx_artifacts_unknown_versions_total',
    severity: 'ERROR',
  },
  {
    name: 'an artifact larger than 10 MiB',
    async prepare(ws, artifact) {
      const big = join(ws.path('s-big'), 'pb-pay-v1@1.0.0.wasm');
      ws.stage(ws.path('s-big'), artifact, ['.sigstore.json']);
      writeFileSync(big, Buffer.concat([readFileSync(artifact), Buffer.alloc(10 * 1024 * 1024)]));
      signBlobWith(ws, big);
      return { url: ws.path('s-big') };
    },
    message: /^artifact verification failed for pb-pay-v1@1\.0\.0: artifact too large: \d+ bytes \(max: 10485760\)$/,
    metric: 'apx_artifacts_verification_failures_total{reason="ARTIFACT_TOO_LARGE"}',
    severity: 'ERROR',
  },
  {
    name: 'bytes that are not WebAssembly',
    async prepare(ws) {
      const file = join(ws.path('s-magic'), 'pb-pay-v1@1.0.0.wasm');
      // No bundle: a stale one (of the real artifact) would be refused first, by the binding check.
      ws.stage(ws.path('s-magic'), ws.compilePayments(), []);
      writeFileSync(file, 'MZ\x90\x00 this is not a WebAssembly module');
      signBlobWith(ws, file);
      return { url: ws.path('s-magic') };
    },
    message: 'artifact verification failed for pb-pay-v1@1.0.0: invalid artifact: not a WASM file',
    metric: 'apx_artifacts_verification_failures_total{reason="ARTIFACT_NOT_WASM"}',
    severity: 'ERROR',
  },
  {
    name: 'a signature by another key',
    async prepare(ws, artifact) {
      ok(apx(ws.dir, ['generate-key-pair', '--output-key-prefix', 'other/cosign', '--force']));
      const staged = ws.stage(ws.path('s-otherkey'), artifact, ['']);
      signBlobWith(ws, staged, 'other/cosign.key');
      return { url: ws.path('s-otherkey') };
    },
    message:
      'artifact verification failed for pb-pay-v1@1.0.0: signature verification failed: ECDSA signature verification failed',
    metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
    severity: 'ERROR',
    securityEvent: 'artifact_tampering',
  },
  {
    name: 'a truncated download (S3 connection cut mid-body)',
    async prepare(ws, artifact) {
      const backend = await s3Backend();
      ok(await apxAsync(ws.dir, ['publish', artifact, '--store', backend.url], backend.env));
      // Every attempt of the idempotent GET is cut (the store retries transient failures).
      for (let i = 0; i < 6; i++) backend.proxy?.truncateNext('pb-pay-v1@1.0.0.wasm');
      return { url: backend.url, env: backend.env, cleanup: () => backend.cleanup() };
    },
    message:
      /^artifact verification failed for pb-pay-v1@1\.0\.0: download of pb-pay-v1@1\.0\.0\.wasm from s3:\/\/apx-artifacts\/policies\S* was cut after \d+ bytes$/,
    metric: 'apx_artifacts_verification_failures_total{reason="INTEGRITY"}',
    severity: 'ERROR',
  },
  {
    name: 'a staging artifact in production (signed binding)',
    async prepare(ws) {
      const staging = ws.compilePayments('1.0.0', ['--env', 'staging']);
      ws.stage(ws.path('s-staging'), staging);
      return { url: ws.path('s-staging'), env: { APX_ENV: 'production', ALLOWED_POLICY_VERSIONS: '1.0.0' } };
    },
    message:
      'artifact verification failed for pb-pay-v1@1.0.0: signed binding mismatch: artifact is signed for environment staging, this worker runs production',
    metric: 'apx_artifacts_verification_failures_total{reason="BINDING_MISMATCH"}',
    severity: 'ERROR',
    securityEvent: 'artifact_substitution',
  },
  {
    name: 'a signed 1.0.0 renamed into 1.1.0 (signed binding)',
    async prepare(ws) {
      const staging = ws.compilePayments('1.0.0', ['--env', 'staging']);
      const dir = ws.path('s-rename');
      ws.stage(dir, staging);
      for (const suffix of ['', '.sig', '.sigstore.json']) {
        renameSync(join(dir, `pb-pay-v1@1.0.0.wasm${suffix}`), join(dir, `pb-pay-v1@1.1.0.wasm${suffix}`));
      }
      return { url: dir, env: { APX_ENV: 'staging' } };
    },
    ref: 'pb-pay-v1@1.1.0',
    message:
      'artifact verification failed for pb-pay-v1@1.1.0: signed binding mismatch: artifact is signed as pb-pay-v1@1.0.0, loaded as pb-pay-v1@1.1.0',
    metric: 'apx_artifacts_verification_failures_total{reason="BINDING_MISMATCH"}',
    severity: 'ERROR',
    securityEvent: 'artifact_substitution',
  },
  {
    name: 'an artifact with the signature of another version (mix and match)',
    async prepare(ws) {
      const dir = ws.path('s-mix');
      ws.stage(dir, ws.compilePayments('1.1.0'), ['']);
      const other = ws.compilePayments('1.0.0');
      copyFileSync(`${other}.sig`, join(dir, 'pb-pay-v1@1.1.0.wasm.sig'));
      return { url: dir };
    },
    ref: 'pb-pay-v1@1.1.0',
    message:
      'artifact verification failed for pb-pay-v1@1.1.0: signature verification failed: ECDSA signature verification failed',
    metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
    severity: 'ERROR',
    securityEvent: 'artifact_tampering',
  },
  {
    // Runbook mode: a production worker trusts its APX_PUBLIC_KEY alone, so the workspace's
    // development key cannot sign for it. With a trust repository, what the dev role approves
    // or signs never reaches production: trust-attacks.e2e.test.ts. (A compromised or retired
    // key is a signer removed from the environment's role there: "a removed artifact signer…".)
    name: 'a development key in production (runbook mode: the production key alone)',
    async prepare(ws) {
      ok(apx(ws.dir, ['generate-key-pair', '--output-key-prefix', 'prodkey/cosign', '--force']));
      ws.stage(ws.path('s-devkey'), ws.compilePayments('1.0.0', ['--env', 'production']));
      return {
        url: ws.path('s-devkey'),
        env: { APX_ENV: 'production', ALLOWED_POLICY_VERSIONS: '1.0.0', APX_PUBLIC_KEY: 'prodkey/cosign.pub' },
      };
    },
    message:
      'artifact verification failed for pb-pay-v1@1.0.0: signature verification failed: ECDSA signature verification failed',
    metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
    severity: 'ERROR',
    securityEvent: 'artifact_tampering',
  },
  {
    name: 'an unreachable store',
    async prepare() {
      return { url: `s3://apx-artifacts/policies?endpoint=http://127.0.0.1:${await closedPort()}`, env: S3_ENV };
    },
    message: /^artifact verification failed for pb-pay-v1@1\.0\.0: cannot reach store s3:\/\/apx-artifacts\/policies/,
    metric: 'apx_policy_load_failures_total{reason="UNREACHABLE"}',
    severity: 'ERROR',
  },
];

describe('e2e: rollback protection', () => {
  it('keeps the floor across restarts (APX_STATE_DIR); the allow-list does not bypass it, APX_ALLOW_ROLLBACK does', async () => {
    const ws = new Workspace();
    const store = ws.path('store');
    const state = { APX_STORE: store, APX_STATE_DIR: ws.path('state') };
    ws.stage(store, ws.compilePayments('1.1.0'));
    const worker = await WorkerProcess.start(ws.dir, state);
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.1.0', 'load 1.1.0');
    } finally {
      await worker.stop();
    }
    // An attacker replaces the store's content with the older signed version; the worker restarts,
    // and an allow-list naming 1.0.0 exactly changes nothing: it admits versions, it does not roll back.
    rmSync(store, { recursive: true });
    ws.stage(store, ws.compilePayments('1.0.0'));
    const restarted = await WorkerProcess.start(ws.dir, {
      ...state,
      APX_POLICIES: 'pb-pay-v1@1.0.0',
      ALLOWED_POLICY_VERSIONS: 'pb-pay-v1@1.0.0,1.1.0',
    });
    try {
      const line = await restarted.waitFor((l) => l.reason === 'ROLLBACK_REFUSED', 'rollback refusal');
      assert.equal(
        line.message,
        'artifact verification failed for pb-pay-v1@1.0.0: rollback refused: pb-pay-v1@1.0.0 is older than 1.1.0, the highest version verified for pb-pay-v1',
      );
      assert.equal(line.security_event, 'rollback_attempt');
      assert.ok((await restarted.metric('apx_artifacts_verification_failures_total{reason="ROLLBACK_REFUSED"}')) >= 1);
    } finally {
      await restarted.stop();
    }
    const deliberate = await WorkerProcess.start(ws.dir, {
      ...state,
      APX_POLICIES: 'pb-pay-v1@1.0.0',
      APX_ALLOW_ROLLBACK: 'pb-pay-v1@1.0.0',
    });
    try {
      await deliberate.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'deliberate rollback');
    } finally {
      await deliberate.stop();
    }
  });
});

describe('e2e: each runbook rejection has its message, metric and log line, and nothing loads', () => {
  const ws = new Workspace();
  const artifact = ws.compilePayments();

  for (const s of SCENARIOS) {
    it(`rejects ${s.name}`, async () => {
      const store = await s.prepare(ws, artifact);
      const ref = s.ref ?? 'pb-pay-v1@1.0.0';
      const worker = await WorkerProcess.start(ws.dir, { APX_STORE: store.url, APX_POLICIES: ref, ...store.env });
      try {
        const matches = (m: string) => (typeof s.message === 'string' ? m === s.message : s.message.test(m));
        const line = await worker.waitFor((l) => matches(l.message), `rejection ${String(s.message)}`);
        assert.equal(line.severity, s.severity);
        assert.equal(line.policy_ref, ref);
        assert.equal(line.security_event, s.securityEvent);
        assert.ok((await worker.metric(s.metric)) >= 1, `${s.metric} counted`);
        const policies = (await worker.get('/v1/policies')).body as Array<{ ref: string | null; status: string }>;
        assert.deepEqual(
          policies.map((p) => [p.ref, p.status]),
          [[null, 'not_ready']],
          'nothing loaded',
        );
        assert.equal((await worker.get('/readyz')).status, 503);
        assert.equal((await worker.get('/healthz')).status, 200, 'still live');
        const refused = await worker.decide('pb-pay-v1', PAYMENTS_GET);
        assert.equal(refused.status, 503);
      } finally {
        await worker.stop();
        await store.cleanup?.();
      }
    });
  }
});
