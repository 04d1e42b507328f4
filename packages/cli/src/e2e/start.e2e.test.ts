// `npm start` on a fresh checkout: a development key appears, the samples are compiled and
// signed into ./artifacts, and the worker serves them.
import assert from 'node:assert/strict';
import { cpSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';
import { PAYMENTS_GET, REPO, WorkerProcess } from './harness.js';

describe('e2e: npm start', () => {
  it('creates a development key, compiles and signs the samples, and serves them', async () => {
    const dir = tempDir('apx-start-');
    cpSync(join(REPO, 'configs'), join(dir, 'configs'), { recursive: true });
    const { COSIGN_PASSWORD: _unset, ...env } = process.env as Record<string, string>;
    const worker = await WorkerProcess.start(dir, env, [join(REPO, 'packages/cli/dist/start.js')]);
    try {
      assert.equal(statSync(join(dir, 'keys/cosign.key')).mode & 0o777, 0o600);
      for (const f of ['pb-pay-v1@1.0.0.wasm', 'pb-pay-v1@1.0.0.wasm.sig', 'pb-pay-v1@1.0.0.wasm.sigstore.json']) {
        assert.ok(existsSync(join(dir, 'artifacts', f)), f);
      }
      const printed = worker.logs.filter((l) => l.severity === 'RAW').map((l) => l.message);
      assert.ok(
        printed.some((l) => l.startsWith('✓ Created development key keys/cosign.key')),
        printed.join('\n'),
      );
      assert.ok(printed.includes('✓ Compiled: artifacts/pb-pay-v1@1.0.0.wasm'));
      assert.ok(printed.includes('✓ Signed:    artifacts/pb-pay-v1@1.0.0.wasm.sig'));
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
      const decision = await worker.decide('pb-pay-v1', PAYMENTS_GET);
      assert.equal(decision.body.allow, true);
    } finally {
      await worker.stop();
    }
  });
});
