import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@apx/core/testing/hygiene';
import { runCli } from '../cli.js';
import type { CliContext } from '../context.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function apx(cwd: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = collect();
  const err = collect();
  const ctx: CliContext = {
    env: { COSIGN_PASSWORD: '', APX_AUDIT_LOG: 'keys/audit.log' },
    cwd,
    stdin: Readable.from([]),
    stdout: out.stream,
    stderr: err.stream,
  };
  const code = await runCli(argv, ctx);
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('apx compile, eval, inspect', () => {
  let dir = '';
  before(async () => {
    dir = tempDir('apx-cli-');
    mkdirSync(join(dir, 'configs'));
    cpSync(join(REPO, 'configs', 'samples'), join(dir, 'configs', 'samples'), { recursive: true });
    const keys = await apx(dir, 'generate-key-pair', '--output-key-prefix', 'keys/cosign');
    assert.equal(keys.code, 0, keys.stderr);
  });

  it("compiles and signs the sample, printing exactly the runbook's lines", async () => {
    const r = await apx(dir, 'compile', 'configs/samples/payments-api.yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '✓ Compiled: pb-pay-v1@1.0.0.wasm\n✓ Signed:    pb-pay-v1@1.0.0.wasm.sig\n');
    const sig = readFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm.sig'), 'utf8');
    assert.match(sig, /^[A-Za-z0-9+/]+=*$/);
    const bundle = JSON.parse(readFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm.sigstore.json'), 'utf8'));
    assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    const v = await apx(
      dir,
      'verify-blob',
      '--key',
      'keys/cosign.pub',
      '--signature',
      'pb-pay-v1@1.0.0.wasm.sig',
      'pb-pay-v1@1.0.0.wasm',
    );
    assert.equal(v.code, 0, v.stderr);
  });

  it('evaluates a request only after verifying the artifact', async () => {
    await apx(dir, 'compile', 'configs/samples/payments-api.yaml');
    const request = {
      method: 'GET',
      host: 'api.example.com',
      path: '/v1/payments/p1',
      headers: { 'X-API-Key': 'demo-acme-prod-key' },
    };
    writeFileSync(join(dir, 'req.json'), JSON.stringify(request));
    const r = await apx(dir, 'eval', 'pb-pay-v1@1.0.0.wasm', '--request', 'req.json');
    assert.equal(r.code, 0, r.stderr);
    const decision = JSON.parse(r.stdout);
    assert.deepEqual([decision.effect, decision.route, decision.identity.id], ['allow', 'payments', 'acme-prod']);

    const tampered = readFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'));
    tampered.writeUInt8((tampered.at(-1) ?? 0) ^ 1, tampered.length - 1);
    mkdirSync(join(dir, 't'), { recursive: true });
    writeFileSync(join(dir, 't', 'pb-pay-v1@1.0.0.wasm'), tampered);
    cpSync(join(dir, 'pb-pay-v1@1.0.0.wasm.sig'), join(dir, 't', 'pb-pay-v1@1.0.0.wasm.sig'));
    const bad = await apx(dir, 'eval', 't/pb-pay-v1@1.0.0.wasm', '--request', 'req.json');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^ERROR: signature verification failed: ECDSA signature verification failed/);
    assert.equal(bad.stdout, '');
  });

  it('inspect says whether the metadata was verified', async () => {
    await apx(dir, 'compile', 'configs/samples/payments-api.yaml');
    const plain = await apx(dir, 'inspect', 'pb-pay-v1@1.0.0.wasm');
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(JSON.parse(plain.stdout).verified, false);
    assert.match(plain.stderr, /unverified/);
    const checked = await apx(dir, 'inspect', '--key', 'keys/cosign.pub', 'pb-pay-v1@1.0.0.wasm');
    const meta = JSON.parse(checked.stdout);
    assert.deepEqual([meta.policy, meta.version, meta.abi, meta.verified], ['pb-pay-v1', '1.0.0', 1, true]);
  });

  it('apx verify answers "would a worker in ENV load this?" with the workers\' own verifier', async () => {
    await apx(dir, 'compile', 'configs/samples/payments-api.yaml');
    const dev = await apx(dir, 'verify', 'pb-pay-v1@1.0.0.wasm');
    assert.equal(dev.code, 0, dev.stderr);
    assert.match(dev.stdout, /^✓ pb-pay-v1@1\.0\.0 would load in dev \(key [0-9a-f]{64}, sha256:[0-9a-f]{64}\)\n$/);

    // Signed for dev: a production worker refuses it for its binding.
    const prod = await apx(dir, 'verify', '--env', 'production', '--allowed-versions', '1.0.0', 'pb-pay-v1@1.0.0.wasm');
    assert.equal(prod.code, 1);
    assert.equal(
      prod.stderr.split('; ')[0],
      'ERROR: signed binding mismatch: artifact is signed for environment dev, this worker runs production',
    );
    const noList = await apx(dir, 'verify', '--env', 'production', 'pb-pay-v1@1.0.0.wasm');
    assert.equal(noList.code, 2);
    assert.match(noList.stderr, /--allowed-versions is required with --env production/);
    const notAllowed = await apx(dir, 'verify', '--allowed-versions', '1.1.0,1.2.0', 'pb-pay-v1@1.0.0.wasm');
    assert.equal(notAllowed.code, 1);
    assert.match(notAllowed.stderr, /^ERROR: policy version 1\.0\.0 not in allowed list: \[1\.1\.0 1\.2\.0\]/);

    // Unsigned: the runbook's strict-mode message.
    mkdirSync(join(dir, 'unsigned-copy'), { recursive: true });
    cpSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), join(dir, 'unsigned-copy', 'pb-pay-v1@1.0.0.wasm'));
    const unsigned = await apx(dir, 'verify', 'unsigned-copy/pb-pay-v1@1.0.0.wasm');
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stderr, /^ERROR: signature file not found: pb-pay-v1@1\.0\.0\.wasm\.sig \(strict mode enabled\)/);
  });

  it('a signed policy renamed to another policy id is refused by verify, eval and inspect, even in dev', async () => {
    await apx(dir, 'compile', 'configs/samples/admin-api.yaml');
    mkdirSync(join(dir, 'renamed'), { recursive: true });
    cpSync(join(dir, 'pb-admin-v1@2.3.0.wasm'), join(dir, 'renamed', 'pb-pay-v1@1.0.0.wasm'));
    cpSync(join(dir, 'pb-admin-v1@2.3.0.wasm.sig'), join(dir, 'renamed', 'pb-pay-v1@1.0.0.wasm.sig'));
    writeFileSync(join(dir, 'req.json'), JSON.stringify({ method: 'GET', host: 'h', path: '/' }));
    const message = /^ERROR: embedded name mismatch: the module says pb-admin-v1@2\.3\.0, loaded as pb-pay-v1@1\.0\.0/;
    for (const argv of [
      ['verify', 'renamed/pb-pay-v1@1.0.0.wasm'],
      ['eval', '--request', 'req.json', 'renamed/pb-pay-v1@1.0.0.wasm'],
      ['inspect', '--key', 'keys/cosign.pub', 'renamed/pb-pay-v1@1.0.0.wasm'],
    ]) {
      const r = await apx(dir, ...argv);
      assert.equal(r.code, 1, argv.join(' '));
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
  });

  it('--check exits 0 only for an identical rebuild', async () => {
    await apx(dir, 'compile', 'configs/samples/payments-api.yaml');
    const same = await apx(dir, 'compile', '--check', 'pb-pay-v1@1.0.0.wasm', 'configs/samples/payments-api.yaml');
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /^✓ Identical: pb-pay-v1@1\.0\.0\.wasm \(sha256:[0-9a-f]{64}\)\n$/);
    const other = await apx(dir, 'compile', '--check', 'pb-pay-v1@1.0.0.wasm', 'configs/samples/admin-api.yaml');
    assert.equal(other.code, 1);
    assert.match(other.stderr, /^ERROR: rebuild of configs\/samples\/admin-api\.yaml differs from pb-pay-v1@1\.0\.0\.wasm/m);
  });

  it('a policy with problems: one line each, exit 1, nothing written, no stack trace', async () => {
    const out = join(dir, 'bad-out');
    writeFileSync(
      join(dir, 'bad.yaml'),
      readFileSync(join(dir, 'configs/samples/payments-api.yaml'), 'utf8')
        .replace('identity.scopes', 'identty.scopes')
        .replace('effect: deny', 'effect: block'),
    );
    const r = await apx(dir, 'compile', '--out', 'bad-out', 'bad.yaml', 'configs/samples/admin-api.yaml');
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      /^bad\.yaml:\d+:\d+ spec\.rules\[0\]\.when: unknown identifier 'identty' \(did you mean 'identity'\?\)$/,
    );
    assert.match(
      lines[1] ?? '',
      /^bad\.yaml:\d+:\d+ spec\.rules\[0\]\.effect: invalid value 'block': expected one of allow, deny$/,
    );
    assert.match(lines.at(-1) ?? '', /^ERROR: 2 problems; no artifact written/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(existsSync(out), false);
  });

  it('--no-sign writes an unsigned artifact and warns; a missing key writes nothing', async () => {
    const r = await apx(dir, 'compile', '--no-sign', '--out', 'unsigned', 'configs/samples/admin-api.yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '✓ Compiled: unsigned/pb-admin-v1@2.3.0.wasm\n');
    assert.match(r.stderr, /WARNING: unsigned\/pb-admin-v1@2\.3\.0\.wasm is not signed/);
    assert.equal(existsSync(join(dir, 'unsigned', 'pb-admin-v1@2.3.0.wasm.sig')), false);
    const missing = await apx(dir, 'compile', '--key', 'keys/none.key', '--out', 'nokey', 'configs/samples/admin-api.yaml');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^ERROR: key file not found at keys\/none\.key/);
    assert.equal(existsSync(join(dir, 'nokey')), false);
  });
});
