// Heavy client libraries (cloud SDKs, the PKCS#11 binding, the Sigstore transparency-log
// verifier) load only when their scheme is used: the modules a process resolves are traced
// with a module.register() resolve hook, and none of them may appear on the paths that do
// not need them. (Their cost, had they been loaded, is printed by `npm run bench:startup`.)
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { apx, ok, WorkerProcess, Workspace } from './harness.js';

// tuf-js and @tufjs/* load only with a trust repository (runbook-mode workers and key-file signing never).
const HEAVY = ['@aws-sdk/', '@google-cloud/', '@grpc/', 'google-gax', 'pkcs11js', '@sigstore/verify', 'tuf-js/', '@tufjs/'];

/** NODE_OPTIONS that make every process append each module URL it resolves to `trace`. */
function traced(ws: Workspace, trace: string): Record<string, string> {
  const hooks = ws.path('trace-hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(${JSON.stringify(trace)}, resolved.url + '\\n');
  return resolved;
}
`,
  );
  const register = ws.path('trace-register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`);
  writeFileSync(trace, '');
  return { NODE_OPTIONS: `--import=${register}` };
}

function heavyModules(trace: string): string[] {
  const urls = readFileSync(trace, 'utf8').split('\n');
  assert.ok(
    urls.some((u) => u.includes('/packages/kms/')),
    'the trace saw the process load APX itself',
  );
  return urls.filter((u) => HEAVY.some((h) => u.includes(`/node_modules/${h}`)));
}

describe('e2e: lazy loading of heavy clients', () => {
  const ws = new Workspace();
  const artifact = ws.compilePayments();

  it('signing and verifying with key files loads no cloud SDK, PKCS#11 binding or tlog verifier', () => {
    const trace = ws.path('cli.trace');
    const env = traced(ws, trace);
    ok(apx(ws.dir, ['sign-blob', '--output-signature', 'a.sig', artifact], env));
    ok(apx(ws.dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'a.sig', artifact], env));
    assert.deepEqual(heavyModules(trace), []);
  });

  it('a worker with a key file and a local store starts and loads a policy without them', async () => {
    const trace = ws.path('worker.trace');
    ws.stage(ws.path('store'), artifact);
    const worker = await WorkerProcess.start(ws.dir, { ...traced(ws, trace), APX_STORE: ws.path('store') });
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
    } finally {
      await worker.stop();
    }
    assert.deepEqual(heavyModules(trace), []);
  });
});
