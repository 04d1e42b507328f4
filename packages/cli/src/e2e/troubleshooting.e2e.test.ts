// The runbook's Troubleshooting section as a test: every symptom it shows must be what APX
// prints in that situation, word for word. The symptoms are read from the runbook itself,
// so a reworded runbook (or a reworded APX message) fails here. The runbook writes
// `artifact.wasm` for "the artifact's file"; it stands for the real file name.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveConfig, startWorker } from '@apx/worker';
import { FakeSecretManager, permissionDenied } from '@apx/worker/test-support/secret-manager-server';
import { apx, ok, SHARED, WorkerProcess, Workspace } from './harness.js';

const RUNBOOK = join(SHARED, 'specs', 'runbook.md');
const skip = existsSync(RUNBOOK) ? false : `runbook not found at ${RUNBOOK} (set APX_SHARED_DIR)`;

/** The ```-fenced lines that follow each "**Symptoms:**" in the Troubleshooting section. */
function runbookSymptoms(): string[] {
  const text = readFileSync(RUNBOOK, 'utf8');
  const section = text.slice(text.indexOf('## Troubleshooting'), text.indexOf('## Security Best Practices'));
  const symptoms: string[] = [];
  for (const match of section.matchAll(/\*\*Symptoms:\*\*\s*```\n([\s\S]*?)```/g)) {
    for (const line of (match[1] ?? '').split('\n')) if (line.trim()) symptoms.push(line.trim());
  }
  return symptoms;
}

/** A worker log line as the runbook shows it: `SEVERITY: <message without the load wrapper>`. */
function asSymptom(line: { severity: string; message: string }): string {
  return `${line.severity}: ${line.message.replace(/^artifact verification failed for \S+: /, '')}`;
}

describe("the runbook's troubleshooting symptoms, word for word", { skip }, () => {
  const symptoms = skip ? [] : runbookSymptoms();
  const ws = new Workspace();
  const artifact = ws.compilePayments();

  it('lists the five symptoms this test reproduces', () => {
    assert.deepEqual(symptoms, [
      'ERROR: signature verification failed: ECDSA signature verification failed',
      'ERROR: key file not found at keys/cosign.key',
      'ERROR: policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]',
      'ERROR: signature file not found: artifact.wasm.sig (strict mode enabled)',
      'ERROR: failed to access secret: rpc error: code = PermissionDenied',
    ]);
  });

  it('Signature Verification Failed: verify-blob of a modified artifact', () => {
    const tampered = ws.path('tampered.wasm');
    const bytes = readFileSync(artifact);
    bytes[20] = (bytes[20] as number) ^ 1;
    writeFileSync(tampered, bytes);
    const r = apx(ws.dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', `${artifact}.sig`, tampered]);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.startsWith(`${symptoms[0]};`), r.stderr);
  });

  it('Keys Not Found: compile without keys/cosign.key', () => {
    rmSync(ws.path('keys/cosign.key'));
    try {
      const r = apx(ws.dir, ['compile', '--out', 'nokey', join(ws.dir, 'payments-1.0.0.yaml')]);
      assert.equal(r.status, 1);
      assert.ok(r.stderr.startsWith(`${symptoms[1]};`), r.stderr);
      assert.equal(existsSync(ws.path('nokey')), false, 'nothing written');
    } finally {
      ok(apx(ws.dir, ['generate-key-pair', '--force']));
    }
  });

  it('Unknown Policy Version: the worker refuses 1.2.0 with ALLOWED_POLICY_VERSIONS="1.0.0,1.1.0"', async () => {
    ws.stage(ws.path('store-version'), ws.compilePayments('1.2.0'));
    const worker = await WorkerProcess.start(ws.dir, {
      APX_STORE: ws.path('store-version'),
      APX_POLICIES: 'pb-pay-v1@1.2.0',
      ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0',
    });
    try {
      const line = await worker.waitFor((l) => l.message.includes('not in allowed list'));
      assert.equal(asSymptom(line), symptoms[2]);
    } finally {
      await worker.stop();
    }
  });

  it('Unsigned Artifact in Production: publishing an artifact without its .sig (strict)', () => {
    const dir = ws.path('unsigned');
    const staged = ws.stage(dir, artifact, ['']);
    const r = apx(ws.dir, ['publish', staged, '--store', ws.path('store-unsigned')]);
    assert.equal(r.status, 1);
    const expected = (symptoms[3] as string).replace('artifact.wasm', 'pb-pay-v1@1.0.0.wasm');
    assert.ok(r.stderr.startsWith(`${expected};`), r.stderr);
  });

  it("GCP Secret Manager Access Denied: the worker's key is a secret it may not read", async () => {
    const server = await FakeSecretManager.start();
    const secret = 'projects/apx-prod/secrets/apx-artifact-pubkey';
    server.failures.set(secret, permissionDenied(secret));
    const lines: Array<{ severity: string; message: string }> = [];
    const { config, warnings } = resolveConfig({
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
      APX_STORE: ws.stage(ws.path('store-secret'), artifact).replace(/\/[^/]+$/, ''),
      APX_PUBLIC_KEY: `${secret}/versions/latest`,
    });
    const worker = await startWorker(config, warnings, {
      env: {},
      cwd: ws.dir,
      retryMinMs: 60_000,
      secretManager: { clientOptions: server.clientOptions() },
      logDestination: { write: (l: string) => lines.push(JSON.parse(l)) },
    });
    try {
      const line = lines.find((l) => l.message.includes('failed to access secret'));
      assert.ok(line, JSON.stringify(lines));
      assert.ok(asSymptom(line).startsWith(symptoms[4] as string), asSymptom(line));
    } finally {
      await worker.stop();
      await server.stop();
    }
  });
});
