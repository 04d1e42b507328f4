// End-to-end: the real `apx` process, as users and CI run it, with openssl as an
// independent implementation on the other side of every signature.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { COMMANDS, loadCommands } from './commands/index.js';
import { apx, PASSWORD, REPO, type Run, SHARED, scratchDir } from './e2e/harness.js';

const VECTORS = resolve(SHARED, 'vectors', 'cosign');
const noOpenssl = toolMissing('openssl');

function openssl(cwd: string, args: string[]): Run {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every failure is exactly one line, `ERROR: ...`, and never a stack trace. */
function assertOneLineError(r: Run, status: number, includes: string): void {
  assert.equal(r.status, status, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.ok(lines[0]?.startsWith('ERROR: '), r.stderr);
  assert.ok(lines[0]?.includes(includes), `expected "${includes}" in: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

const workdir = () => scratchDir('apx-cli-');

describe('apx generate-key-pair', () => {
  it('writes keys/cosign.key (0600) and keys/cosign.pub, and refuses to overwrite without --force', () => {
    const dir = workdir();
    const r = apx(dir, ['generate-key-pair']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Key id: [0-9a-f]{64}/);
    assert.equal(statSync(join(dir, 'keys/cosign.key')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(dir, 'keys/cosign.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
    const before = readFileSync(join(dir, 'keys/cosign.key'), 'utf8');
    assertOneLineError(apx(dir, ['generate-key-pair']), 1, 'refusing to overwrite keys/cosign.key');
    assert.equal(readFileSync(join(dir, 'keys/cosign.key'), 'utf8'), before);
    assert.equal(apx(dir, ['generate-key-pair', '--force']).status, 0);
    assert.notEqual(readFileSync(join(dir, 'keys/cosign.key'), 'utf8'), before);
  });

  it('honours --output-key-prefix and an empty COSIGN_PASSWORD', () => {
    const dir = workdir();
    assert.equal(apx(dir, ['generate-key-pair', '--output-key-prefix', 'x/dev'], { COSIGN_PASSWORD: '' }).status, 0);
    writeFileSync(join(dir, 'f'), 'data');
    const r = apx(dir, ['sign-blob', '--key', 'x/dev.key', 'f'], { COSIGN_PASSWORD: '' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('without COSIGN_PASSWORD and without a terminal, says how to provide the password', () => {
    const dir = workdir();
    const r = apx(dir, ['generate-key-pair'], { COSIGN_PASSWORD: undefined });
    assertOneLineError(r, 1, 'COSIGN_PASSWORD is not set and there is no terminal');
    assert.equal(existsSync(join(dir, 'keys/cosign.key')), false);
  });
});

describe('apx sign-blob / verify-blob', () => {
  const dir = workdir();
  apx(dir, ['generate-key-pair']);
  writeFileSync(join(dir, 'pb.wasm'), Buffer.from('\0asm\x01\0\0\0 policy'));

  it('signs and verifies with a detached signature and a bundle', () => {
    const s = apx(dir, ['sign-blob', '--output-signature', 'pb.wasm.sig', '--bundle', 'pb.wasm.sigstore.json', 'pb.wasm']);
    assert.equal(s.status, 0, s.stderr);
    assert.doesNotMatch(readFileSync(join(dir, 'pb.wasm.sig'), 'utf8'), /\n/);
    const v = apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'pb.wasm.sig', 'pb.wasm']);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stderr, /^Verified OK$/m);
    const b = apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--bundle', 'pb.wasm.sigstore.json', 'pb.wasm']);
    assert.equal(b.status, 0, b.stderr);
  });

  it('prints the signature with a newline when no --output-signature is given', () => {
    const s = apx(dir, ['sign-blob', 'pb.wasm']);
    assert.match(s.stdout, /^[A-Za-z0-9+/]+=*\n$/);
    writeFileSync(join(dir, 'stdout.sig'), s.stdout);
    assert.equal(apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'stdout.sig', 'pb.wasm']).status, 0);
  });

  it('rejects a tampered file with the runbook message, and names a bundle digest mismatch', () => {
    apx(dir, ['sign-blob', '--output-signature', 't.sig', '--bundle', 't.json', 'pb.wasm']);
    writeFileSync(join(dir, 'tampered.wasm'), Buffer.from('\0asm\x01\0\0\0 policY'));
    assertOneLineError(
      apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 't.sig', 'tampered.wasm']),
      1,
      'signature verification failed: ECDSA signature verification failed',
    );
    assertOneLineError(
      apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--bundle', 't.json', 'tampered.wasm']),
      1,
      'bundle digest does not match the artifact',
    );
  });

  it('rejects a signature by another key', () => {
    apx(dir, ['generate-key-pair', '--output-key-prefix', 'other']);
    apx(dir, ['sign-blob', '--key', 'other.key', '--output-signature', 'o.sig', 'pb.wasm']);
    assertOneLineError(
      apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'o.sig', 'pb.wasm']),
      1,
      'signature verification failed: ECDSA signature verification failed',
    );
  });

  it('gives one precise line for every kind of bad input', () => {
    assertOneLineError(
      apx(dir, ['sign-blob', '--key', 'keys/missing.key', 'pb.wasm']),
      1,
      'key file not found at keys/missing.key',
    );
    assertOneLineError(apx(dir, ['sign-blob', 'pb.wasm'], { COSIGN_PASSWORD: 'wrong' }), 1, 'wrong password for keys/cosign.key');
    assertOneLineError(apx(dir, ['sign-blob', 'missing.wasm']), 1, 'file not found: missing.wasm');
    const verify = (extra: string[]) => apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', ...extra, 'pb.wasm']);
    assertOneLineError(verify(['--signature', 'nope.sig']), 1, 'signature file not found: nope.sig');
    assertOneLineError(verify(['--bundle', 'nope.json']), 1, 'bundle file not found: nope.json');
    writeFileSync(join(dir, 'junk.sig'), 'not base64 at all!');
    assertOneLineError(verify(['--signature', 'junk.sig']), 1, 'malformed signature');
    writeFileSync(join(dir, 'junk.json'), '{"mediaType": 1');
    assertOneLineError(verify(['--bundle', 'junk.json']), 1, 'invalid bundle junk.json: not JSON');
    assertOneLineError(
      apx(dir, ['verify-blob', '--key', 'nope.pub', '--signature', 't.sig', 'pb.wasm']),
      1,
      'key file not found: nope.pub',
    );
    // verify-blob exits 1 for every failure, usage mistakes included, as cosign verify-blob does.
    assertOneLineError(verify([]), 1, 'pass --signature FILE or --bundle FILE');
    assertOneLineError(apx(dir, ['verify-blob', '--signature', 't.sig', 'pb.wasm']), 1, '--key is required');
    assertOneLineError(apx(dir, ['sign-blob', '--no-such-flag', 'pb.wasm']), 2, "Unknown option '--no-such-flag'");
    assertOneLineError(apx(dir, ['frobnicate']), 2, 'unknown command "frobnicate"');
  });

  it('uses the runbook words when the default key is missing', () => {
    const empty = workdir();
    writeFileSync(join(empty, 'f'), 'x');
    assertOneLineError(apx(empty, ['sign-blob', 'f']), 1, 'key file not found at keys/cosign.key');
  });

  it('public-key prints the public key of a private key file, identical to cosign.pub', () => {
    const r = apx(dir, ['public-key', '--key', 'keys/cosign.key']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, readFileSync(join(dir, 'keys/cosign.pub'), 'utf8'));
  });
});

describe('interoperability with openssl (both ways)', { skip: noOpenssl }, () => {
  const dir = workdir();

  it('openssl dgst -sha256 -verify accepts an APX signature', () => {
    apx(dir, ['generate-key-pair']);
    writeFileSync(join(dir, 'blob'), Buffer.alloc(4096, 0x5a));
    apx(dir, ['sign-blob', '--output-signature', 'blob.sig', 'blob']);
    writeFileSync(join(dir, 'blob.der'), Buffer.from(readFileSync(join(dir, 'blob.sig'), 'utf8'), 'base64'));
    const r = openssl(dir, ['dgst', '-sha256', '-verify', 'keys/cosign.pub', '-signature', 'blob.der', 'blob']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Verified OK/);
  });

  it("APX verifies a signature made by openssl dgst -sha256 -sign, and imports openssl's key", () => {
    assert.equal(openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ossl.pem']).status, 0);
    assert.equal(openssl(dir, ['ec', '-in', 'ossl.pem', '-pubout', '-out', 'ossl.pub']).status, 0);
    writeFileSync(join(dir, 'data'), 'signed by openssl');
    assert.equal(openssl(dir, ['dgst', '-sha256', '-sign', 'ossl.pem', '-out', 'data.der', 'data']).status, 0);
    writeFileSync(join(dir, 'data.sig'), readFileSync(join(dir, 'data.der')).toString('base64'));
    const v = apx(dir, ['verify-blob', '--key', 'ossl.pub', '--signature', 'data.sig', 'data']);
    assert.equal(v.status, 0, v.stderr);
    // The same key imported into cosign's format signs; openssl verifies the result.
    const imp = apx(dir, ['import-key-pair', '--key', 'ossl.pem', '--output-key-prefix', 'imported']);
    assert.equal(imp.status, 0, imp.stderr);
    assert.equal(readFileSync(join(dir, 'imported.pub'), 'utf8'), readFileSync(join(dir, 'ossl.pub'), 'utf8'));
    apx(dir, ['sign-blob', '--key', 'imported.key', '--output-signature', 'data2.sig', 'data']);
    writeFileSync(join(dir, 'data2.der'), Buffer.from(readFileSync(join(dir, 'data2.sig'), 'utf8'), 'base64'));
    assert.equal(openssl(dir, ['dgst', '-sha256', '-verify', 'ossl.pub', '-signature', 'data2.der', 'data']).status, 0);
  });

  it('P-384 and Ed25519 keys generated by openssl sign and verify through APX as cosign 2.6+', () => {
    assert.equal(
      openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'p384.pem']).status,
      0,
    );
    assert.equal(openssl(dir, ['genpkey', '-algorithm', 'ed25519', '-out', 'ed.pem']).status, 0);
    writeFileSync(join(dir, 'msg'), 'hello');
    for (const name of ['p384', 'ed']) {
      assert.equal(apx(dir, ['import-key-pair', '--key', `${name}.pem`, '--output-key-prefix', name]).status, 0);
      apx(dir, ['sign-blob', '--key', `${name}.key`, '--output-signature', `${name}.sig`, 'msg']);
      const v = apx(dir, ['verify-blob', '--key', `${name}.pub`, '--signature', `${name}.sig`, 'msg']);
      assert.equal(v.status, 0, `${name}: ${v.stderr}`);
    }
    writeFileSync(join(dir, 'p384.der'), Buffer.from(readFileSync(join(dir, 'p384.sig'), 'utf8'), 'base64'));
    assert.equal(openssl(dir, ['dgst', '-sha384', '-verify', 'p384.pub', '-signature', 'p384.der', 'msg']).status, 0);
  });
});

describe('apx with the shared cosign vectors', { skip: existsSync(VECTORS) ? false : `vectors absent at ${VECTORS}` }, () => {
  it('verifies real cosign output and refuses the trailing-byte signature', () => {
    const v = (sig: string) =>
      apx(REPO, [
        'verify-blob',
        '--key',
        join(VECTORS, 'blobs/trudeplo-cosign2.pub'),
        '--signature',
        join(VECTORS, sig),
        join(VECTORS, 'blobs/trudeplo-TestAgent2.bin'),
      ]);
    assert.equal(v('blobs/trudeplo-TestAgent2.sig').status, 0);
    assert.equal(v('derived/trudeplo-TestAgent2.p1363.sig').status, 0);
    assertOneLineError(v('derived/trudeplo-TestAgent2.trailing-zero-byte.sig'), 1, 'trailing byte');
  });

  it("refuses to import a P-224 key with cosign's reason", () => {
    const dir = workdir();
    assertOneLineError(
      apx(dir, ['import-key-pair', '--key', join(VECTORS, 'import/invalidecp224.key')]),
      1,
      'error validating ecdsa key: ECDSA curve P-224 not allowed',
    );
  });
});

describe('apx --help', () => {
  it('describes every flag of every command', async () => {
    for (const command of await loadCommands()) {
      const r = apx(REPO, [command.name, '--help']);
      assert.equal(r.status, 0);
      for (const flag of command.flags) assert.match(r.stdout, new RegExp(`--${flag.name}\\b`), `${command.name} --${flag.name}`);
    }
    const top = apx(REPO, ['--help']);
    for (const command of COMMANDS) assert.match(top.stdout, new RegExp(command.name));
  });

  it("lists each command with its own spec's name and summary (the table repeats them so as not to load every command)", async () => {
    const specs = await loadCommands();
    assert.deepEqual(
      COMMANDS.map((c) => [c.name, c.summary]),
      specs.map((s) => [s.name, s.summary]),
    );
  });

  it("runs as ./tools/cli/apx from the repository root, the runbook's path", () => {
    const r = spawnSync(join(REPO, 'tools/cli/apx'), ['--version'], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^apx \d+\.\d+\.\d+/);
  });
});

describe('apx sign and tools/cli/sign_artifact.sh (signed binding)', () => {
  it('writes a cosign .sig and a bundle binding id, version and environment', () => {
    const dir = workdir();
    apx(dir, ['generate-key-pair']);
    writeFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), Buffer.from('\0asm\x01\0\0\0'));
    const r = spawnSync(
      join(REPO, 'tools/cli/sign_artifact.sh'),
      ['pb-pay-v1@1.0.0.wasm', '--version', '1.0.0', '--env', 'production'],
      {
        cwd: dir,
        env: { ...process.env, COSIGN_PASSWORD: PASSWORD },
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /✓ Signed: {4}pb-pay-v1@1\.0\.0\.wasm\.sig/);
    const bundle = JSON.parse(readFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm.sigstore.json'), 'utf8'));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
    assert.equal(statement.subject[0].name, 'pb-pay-v1@1.0.0');
    assert.equal(statement.predicate.environment, 'production');
    const v = apx(dir, [
      'verify-blob',
      '--key',
      'keys/cosign.pub',
      '--signature',
      'pb-pay-v1@1.0.0.wasm.sig',
      '--bundle',
      'pb-pay-v1@1.0.0.wasm.sigstore.json',
      'pb-pay-v1@1.0.0.wasm',
    ]);
    assert.equal(v.status, 0, v.stderr);
  });

  it('refuses missing or malformed flags with one line', () => {
    const dir = workdir();
    writeFileSync(join(dir, 'a.wasm'), 'x');
    assertOneLineError(apx(dir, ['sign', 'a.wasm']), 2, '--version is required');
    assertOneLineError(apx(dir, ['sign', 'a.wasm', '--version', '1.0.0']), 2, '--policy-id is required');
    assertOneLineError(apx(dir, ['sign', 'a.wasm', '--version', '1.0', '--policy-id', 'a']), 2, 'is not a semantic version');
    assertOneLineError(
      apx(dir, ['sign', 'a.wasm', '--version', '1.0.0', '--policy-id', 'a', '--env', 'prod']),
      2,
      '--env prod is not one of',
    );
    const help = spawnSync(join(REPO, 'tools/cli/sign_artifact.sh'), ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--policy-id ID/);
  });
});

describe('audit trail of signing operations', () => {
  it('appends one JSON line per signature, with key id, key reference, digest and context, and no secret', () => {
    const dir = workdir();
    apx(dir, ['generate-key-pair']);
    writeFileSync(join(dir, 'blob'), 'audited');
    assert.equal(apx(dir, ['sign-blob', '--output-signature', 'blob.sig', 'blob']).status, 0);
    writeFileSync(join(dir, 'pb-audit@2.0.0.wasm'), Buffer.from('\0asm\x01\0\0\0'));
    assert.equal(apx(dir, ['sign', 'pb-audit@2.0.0.wasm', '--version', '2.0.0', '--env', 'staging']).status, 0);
    const text = readFileSync(join(dir, 'keys/audit.log'), 'utf8');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(lines[0] ?? {}), [
      'time',
      'host',
      'operation',
      'key_id',
      'key_ref',
      'digest',
      'reference',
      'environment',
    ]);
    assert.equal(lines[0]?.operation, 'sign-blob');
    assert.equal(lines[0]?.key_ref, 'keys/cosign.key');
    assert.match(String(lines[0]?.digest), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual([lines[1]?.operation, lines[1]?.reference, lines[1]?.environment], ['sign', 'pb-audit@2.0.0', 'staging']);
    assert.doesNotMatch(text, new RegExp(PASSWORD));
    assert.equal(statSync(join(dir, 'keys/audit.log')).mode & 0o777, 0o600);
  });

  it('writes to APX_AUDIT_LOG when set, and redacts PINs in key references', async () => {
    const { redactKeyRef } = await import('@apx/kms');
    assert.equal(
      redactKeyRef('pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234'),
      'pkcs11:token=t;object=o?module-path=/m.so',
    );
    const dir = workdir();
    apx(dir, ['generate-key-pair']);
    writeFileSync(join(dir, 'blob'), 'x');
    assert.equal(apx(dir, ['sign-blob', 'blob'], { APX_AUDIT_LOG: 'audit/signing.log' }).status, 0);
    assert.match(readFileSync(join(dir, 'audit/signing.log'), 'utf8'), /"operation":"sign-blob"/);
  });
});
