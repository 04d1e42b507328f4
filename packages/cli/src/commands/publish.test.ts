// `apx publish`, end to end: the real process, a real key, a local directory store.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';

const MAIN = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'main.js');
const WASM = Buffer.from('0061736d010000000108016000017f', 'hex');

function apx(cwd: string, args: string[], env: Record<string, string> = {}) {
  const { APX_STORE: _s, ...base } = process.env;
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd,
    env: { ...(base as Record<string, string>), COSIGN_PASSWORD: 'pw', APX_AUDIT_LOG: 'keys/audit.log', ...env },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function signedArtifact(): string {
  const dir = tempDir('apx-publish-');
  assert.equal(apx(dir, ['generate-key-pair']).status, 0);
  writeFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), WASM);
  const r = apx(dir, [
    'sign-blob',
    '--output-signature',
    'pb-pay-v1@1.0.0.wasm.sig',
    '--bundle',
    'pb-pay-v1@1.0.0.wasm.sigstore.json',
    'pb-pay-v1@1.0.0.wasm',
  ]);
  assert.equal(r.status, 0, r.stderr);
  return dir;
}

describe('apx publish', () => {
  it('publishes artifact, signature and bundle to ./artifacts; again is a no-op; other bytes are refused', () => {
    const dir = signedArtifact();
    const first = apx(dir, ['publish', 'pb-pay-v1@1.0.0.wasm']);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /Published: pb-pay-v1@1\.0\.0 to \.\/artifacts/);
    assert.deepEqual(readdirSync(join(dir, 'artifacts')).sort(), [
      'pb-pay-v1@1.0.0.wasm',
      'pb-pay-v1@1.0.0.wasm.sig',
      'pb-pay-v1@1.0.0.wasm.sigstore.json',
    ]);
    assert.deepEqual(readFileSync(join(dir, 'artifacts', 'pb-pay-v1@1.0.0.wasm')), WASM);
    // cosign's view of the stored pair: it still verifies.
    const verify = apx(dir, [
      'verify-blob',
      '--key',
      'keys/cosign.pub',
      '--signature',
      'artifacts/pb-pay-v1@1.0.0.wasm.sig',
      'artifacts/pb-pay-v1@1.0.0.wasm',
    ]);
    assert.equal(verify.status, 0, verify.stderr);

    const again = apx(dir, ['publish', 'pb-pay-v1@1.0.0.wasm']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /Already published, identical/);

    writeFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), Buffer.concat([WASM, Buffer.from([0])]));
    assert.equal(apx(dir, ['sign-blob', '--output-signature', 'pb-pay-v1@1.0.0.wasm.sig', 'pb-pay-v1@1.0.0.wasm']).status, 0);
    const changed = apx(dir, ['publish', '--store', 'artifacts', 'pb-pay-v1@1.0.0.wasm']);
    assert.equal(changed.status, 1);
    assert.match(
      changed.stderr,
      /^ERROR: pb-pay-v1@1\.0\.0\.wasm\.sig already exists in artifacts with different content; published versions are immutable/,
    );
    assert.deepEqual(readFileSync(join(dir, 'artifacts', 'pb-pay-v1@1.0.0.wasm')), WASM);
  });

  it("refuses an artifact without its .sig with the runbook's message, publishing nothing", () => {
    const dir = tempDir('apx-publish-');
    writeFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), WASM);
    const r = apx(dir, ['publish', 'pb-pay-v1@1.0.0.wasm'], { APX_STORE: 'out' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1);
    assert.match(
      r.stderr,
      /^ERROR: signature file not found: pb-pay-v1@1\.0\.0\.wasm\.sig \(strict mode enabled\); sign it first/,
    );
    assert.deepEqual(readdirSync(dir), ['pb-pay-v1@1.0.0.wasm']);
  });

  it('honours APX_STORE, and reports an unreachable store in one line naming it', async () => {
    const dir = signedArtifact();
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    assert.equal(apx(dir, ['publish', 'pb-pay-v1@1.0.0.wasm'], { APX_STORE: 'elsewhere' }).status, 0);
    assert.equal(readdirSync(join(dir, 'elsewhere')).length, 3);
    const r = apx(dir, ['publish', '--store', `oci+http://127.0.0.1:${port}/apx`, '--timeout', '2', 'pb-pay-v1@1.0.0.wasm']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`ERROR: cannot reach store oci+http://127.0.0.1:${port}/apx`), r.stderr);
    assert.equal(apx(dir, ['publish', '--timeout', 'x', 'pb-pay-v1@1.0.0.wasm']).status, 2);
    assert.equal(apx(dir, ['publish', '--store', 'ftp://x', 'pb-pay-v1@1.0.0.wasm']).status, 1);
  });
});
