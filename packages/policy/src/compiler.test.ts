import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ABI_VERSION, checkAbi, META_SECTION, PolicyHost } from '@apx/core';
import { toolMissing } from '@apx/core/testing/tools';
import wabtInit from 'wabt';
import { COMPILER_VERSION, compilePolicy } from './compiler.js';
import { compileSample, REPO_ROOT, SAMPLES, SAMPLES_DIR, signAndVerify } from './testing/artifacts.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const noWasmValidate = toolMissing('wasm-validate');
const scratch = mkdtempSync(join(tmpdir(), 'apx-validate-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('compiler', () => {
  it('compiles the payments sample to pb-pay-v1@1.0.0.wasm with its metadata section', async () => {
    const c = await compileSample('payments-api.yaml');
    assert.equal(c.fileName, 'pb-pay-v1@1.0.0.wasm');
    const module = new WebAssembly.Module(c.wasm);
    const { meta, tables } = checkAbi(module);
    // The worker learns from the artifact itself where to verify bearer tokens.
    assert.deepEqual(tables.jwt, {
      issuer: 'https://login.example.com/',
      jwksUri: 'https://login.example.com/.well-known/jwks.json',
      audiences: ['payments-api'],
    });
    assert.equal(tables.apiKeyHeader, 'x-api-key');
    assert.deepEqual(meta, {
      policy: 'pb-pay-v1',
      version: '1.0.0',
      abi: ABI_VERSION,
      compiler: COMPILER_VERSION,
      sourceSha256: createHash('sha256').update(c.canonical).digest('hex'),
    });
    assert.equal(WebAssembly.Module.customSections(module, META_SECTION).length, 1);
  });

  for (const sample of SAMPLES) {
    it(`${sample}: self-contained module (one memory import with a maximum, one export, no start)`, async () => {
      const c = await compileSample(sample);
      const wabt = await wabtInit();
      const mod = wabt.readWasm(c.wasm, { readDebugNames: false });
      const text = mod.toText({ foldExprs: false, inlineExport: false });
      mod.destroy();
      assert.doesNotMatch(text, /\(start /);
      const imports = text.match(/\(import [^\n]*/g) ?? [];
      assert.equal(imports.length, 1);
      assert.match(imports[0] ?? '', /^\(import "env" "memory" \(memory \(;0;\) (\d+) \1\)\)$/);
      assert.deepEqual(WebAssembly.Module.exports(new WebAssembly.Module(c.wasm)), [{ name: 'decide', kind: 'function' }]);
    });

    it(`${sample}: Debian's wasm-validate accepts it`, {
      skip: noWasmValidate,
    }, async () => {
      const c = await compileSample(sample);
      const file = join(scratch, c.fileName);
      writeFileSync(file, c.wasm);
      execFileSync('wasm-validate', [file], { stdio: 'pipe' });
    });
  }

  it('is deterministic: two compiles in separate processes give identical bytes', async () => {
    const script = `import { compilePolicy } from ${JSON.stringify(join(REPO_ROOT, 'packages/policy/dist/index.js'))};
      import { readFileSync } from 'node:fs'; import { createHash } from 'node:crypto';
      const f = process.argv[1];
      const c = await compilePolicy(readFileSync(f, 'utf8'), f);
      process.stdout.write(createHash('sha256').update(c.wasm).digest('hex'));`;
    const file = join(SAMPLES_DIR, 'payments-api.yaml');
    const run = (cwd: string, extraEnv: Record<string, string>) =>
      execFileSync(process.execPath, ['--input-type=module', '-e', script, file], {
        cwd,
        env: { ...process.env, ...extraEnv },
      }).toString();
    const a = run(REPO_ROOT, { TZ: 'UTC', LANG: 'C' });
    const b = run(tmpdir(), { TZ: 'Asia/Kolkata', LANG: 'de_DE.UTF-8' });
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(a, b);
    assert.equal(a, sha((await compileSample('payments-api.yaml')).wasm));
  });

  it('keeps the source digest and bytes when only comments, quoting and key order change', async () => {
    const original = readFileSync(join(SAMPLES_DIR, 'payments-api.yaml'), 'utf8');
    const reformatted = `# a new comment\n${original
      .replace('apiVersion: apx/v1\nkind: PolicyBundle\n', 'kind: "PolicyBundle"\napiVersion: apx/v1 # moved\n')
      .replace('maxBodyBytes: 1048576', 'maxBodyBytes: 0x100000')}`;
    const a = await compilePolicy(original, 'a.yaml');
    const b = await compilePolicy(reformatted, 'b.yaml');
    assert.equal(a.meta.sourceSha256, b.meta.sourceSha256);
    assert.equal(sha(a.wasm), sha(b.wasm));
    const changed = await compilePolicy(original.replace('status: 402', 'status: 403'), 'c.yaml');
    assert.notEqual(changed.meta.sourceSha256, a.meta.sourceSha256);
    assert.notEqual(sha(changed.wasm), sha(a.wasm));
  });

  it('embeds no absolute path, time or machine name', async () => {
    const c = await compileSample('payments-api.yaml');
    const text = Buffer.from(c.wasm).toString('latin1');
    assert.ok(!text.includes(REPO_ROOT), 'absolute path in module');
    assert.ok(!text.includes('configs/samples'), 'source path in module');
    assert.ok(!text.includes(String(new Date().getUTCFullYear())), 'a year in the module');
  });

  it('a compiled sample decides a typical request as documented', async () => {
    const c = await compileSample('payments-api.yaml');
    const host = PolicyHost.load(signAndVerify(c.wasm));
    const base = { method: 'POST', host: 'api.example.com', path: '/v1/payments/p1', ip: '192.0.2.1', bodySize: 10 };
    const ok = host.decide({ ...base, headers: { 'x-api-key': 'demo-acme-prod-key', 'idempotency-key': 'k' } });
    assert.equal(ok.effect, 'allow');
    assert.equal(ok.route, 'payments');
    assert.deepEqual(ok.identity, { kind: 'apiKey', id: 'acme-prod', tenant: 'acme', plan: 'pro' });
    assert.deepEqual(
      ok.rateLimits.map((r) => [r.name, r.value]),
      [['per-tenant', 'acme']],
    );
    assert.deepEqual(ok.headers.request.set, { 'X-Policy-Version': '1.0.0' });
    const free = host.decide({ ...base, headers: { 'x-api-key': 'demo-globex-key', 'idempotency-key': 'k' } });
    assert.deepEqual([free.effect, free.status, free.rule], ['deny', 403, 'writes-need-scope']);
    assert.deepEqual(free.rateLimits, []);
    const noKey = host.decide({ ...base, headers: { 'x-api-key': 'guess' } });
    assert.deepEqual([noKey.status, noKey.reason], [401, 'invalid API key']);
    const denied = host.decide({ ...base, ip: '203.0.113.9', headers: { 'x-api-key': 'demo-acme-prod-key' } });
    assert.deepEqual([denied.status, denied.reason], [403, 'client address denied']);
    const health = host.decide({ method: 'GET', host: 'lb.internal.example.com', path: '/healthz' });
    assert.deepEqual([health.effect, health.route, health.identity.kind], ['allow', 'health', 'none']);
  });
});
