// Issue 14, signing / publishing / CLI plumbing: the runbook's sign_artifact.sh commands as
// written, publish refusals, all-or-none writes under SIGINT, env:// keys, inline signatures,
// --json, hash-key, the audit log's default place, retired keys, shell completion.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { runCli } from '../cli.js';
import { parseCommandArgs } from '../command.js';
import { compileCommand } from '../commands/compile.js';
import type { CliContext } from '../context.js';
import { apx, MAIN, PASSWORD, REPO, type Run, SHARED, scratchDir } from './harness.js';

const PAYMENTS = join(REPO, 'configs/samples/payments-api.yaml');
const SAMPLES = ['payments-api.yaml', 'admin-api.yaml', 'public-catalog-api.yaml'].map((f) => join(REPO, 'configs/samples', f));
const sha256 = (bytes: string | Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every failure is exactly one line, `ERROR: ...`, and never a stack trace. */
function oneLineError(r: Run, status: number, includes: string | RegExp): void {
  assert.equal(r.status, status, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.ok(lines[0]?.startsWith('ERROR: '), r.stderr);
  if (typeof includes === 'string') assert.ok(lines[0]?.includes(includes), `expected "${includes}" in: ${r.stderr}`);
  else assert.match(lines[0] ?? '', includes);
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `stderr: ${r.stderr}`);
  return r;
}

/** A scratch directory with a key pair (keys/cosign.key, password PASSWORD) and the payments sample compiled. */
function workspace(prefix: string): string {
  const dir = scratchDir(prefix);
  ok(apx(dir, ['generate-key-pair']));
  ok(apx(dir, ['compile', PAYMENTS]));
  return dir;
}

function statementOf(bundlePath: string): { subject: Array<{ name: string }>; predicate: { environment: string } } {
  const bundle = JSON.parse(readFileSync(bundlePath, 'utf8')) as { dsseEnvelope: { payload: string } };
  return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
}

/** The runbook's `./tools/cli/sign_artifact.sh ...` commands (continuation lines joined), --help aside. */
function runbookSignCommands(text: string): string[] {
  const joined = text.replace(/\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('./tools/cli/sign_artifact.sh ') && !l.includes('--help'));
}

describe('the runbook: sign_artifact.sh commands as written', () => {
  const runbook = join(SHARED, 'specs', 'runbook.md');
  const skip = existsSync(runbook) ? false : `${runbook} is absent (the shared specs are not checked out beside the repo)`;
  if (skip) console.log(`# skipped: ${skip}`);

  it('each of them signs a compiled artifact, artifact.wasm included, taking id and version from it', { skip }, () => {
    const commands = runbookSignCommands(readFileSync(runbook, 'utf8'));
    // pb-pay-v1@1.0.0.wasm once with every flag, artifact.wasm four times (two of them with --version only).
    assert.ok(commands.length >= 5, `runbook commands: ${commands.join(' | ')}`);
    assert.equal(commands.filter((c) => c.startsWith('./tools/cli/sign_artifact.sh artifact.wasm')).length, 4);
    const dir = workspace('apx-runbook-');
    // ./tools/cli/... resolves in the scratch directory: the repository's tools, as in a checkout.
    symlinkSync(join(REPO, 'tools'), join(dir, 'tools'));
    symlinkSync(join(REPO, 'packages'), join(dir, 'packages'));
    copyFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), join(dir, 'artifact.wasm'));
    const env = { ...process.env, COSIGN_PASSWORD: PASSWORD, APX_AUDIT_LOG: 'keys/audit.log' };
    for (const command of commands) {
      const r = spawnSync('sh', ['-c', command], { cwd: dir, env, encoding: 'utf8' });
      assert.equal(r.status, 0, `${command}\n${r.stderr}`);
      const file = command.includes('artifact.wasm') ? 'artifact.wasm' : 'pb-pay-v1@1.0.0.wasm';
      const statement = statementOf(join(dir, `${file}.sigstore.json`));
      assert.equal(statement.subject[0]?.name, 'pb-pay-v1@1.0.0', command);
      assert.equal(statement.predicate.environment, command.includes('--env production') ? 'production' : 'dev', command);
      // The runbook's next step: verify the signature with the public key.
      ok(apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', `${file}.sig`, file]));
    }
    // A flag that disagrees with the embedded id or version is still refused, in one line.
    const wrong = spawnSync('sh', ['-c', './tools/cli/sign_artifact.sh artifact.wasm --version 2.0.0'], {
      cwd: dir,
      env,
      encoding: 'utf8',
    });
    oneLineError(
      { status: wrong.status, stdout: wrong.stdout, stderr: wrong.stderr },
      1,
      'refusing to sign artifact.wasm as pb-pay-v1@2.0.0: it was compiled as pb-pay-v1@1.0.0 (--version 2.0.0 disagrees)',
    );
    oneLineError(
      apx(dir, ['sign', 'artifact.wasm', '--policy-id', 'pb-other']),
      1,
      'it was compiled as pb-pay-v1@1.0.0 (--policy-id pb-other disagrees)',
    );
  });
});

describe('apx publish: bundle required for staging and production, names, destination checked first', () => {
  it('refuses staging and production without the bundle (the fix in the message), warns for dev', () => {
    const dir = workspace('apx-publish-bundle-');
    ok(apx(dir, ['sign', 'pb-pay-v1@1.0.0.wasm', '--env', 'production']));
    // The bundle binds production: publish takes that environment.
    ok(apx(dir, ['publish', '--store', 'prod', 'pb-pay-v1@1.0.0.wasm']));
    oneLineError(
      apx(dir, ['publish', '--store', 'st', '--env', 'staging', 'pb-pay-v1@1.0.0.wasm']),
      1,
      'its bundle pb-pay-v1@1.0.0.wasm.sigstore.json binds it to production; sign it for staging: apx sign pb-pay-v1@1.0.0.wasm --env staging',
    );
    // The runbook's upload: artifact and .sig, no bundle.
    const bare = scratchDir('apx-publish-bare-');
    for (const f of ['pb-pay-v1@1.0.0.wasm', 'pb-pay-v1@1.0.0.wasm.sig']) copyFileSync(join(dir, f), join(bare, f));
    for (const env of ['staging', 'production']) {
      oneLineError(
        apx(bare, ['publish', '--store', 'out', '--env', env, 'pb-pay-v1@1.0.0.wasm']),
        1,
        `refusing to publish pb-pay-v1@1.0.0.wasm for ${env}: pb-pay-v1@1.0.0.wasm.sigstore.json (its bundle) is missing, and ${env} workers refuse it (BINDING_MISSING); sign it for ${env} first: apx sign pb-pay-v1@1.0.0.wasm --env ${env}`,
      );
    }
    assert.equal(existsSync(join(bare, 'out')), false, 'nothing published');
    const dev = ok(apx(bare, ['publish', '--store', 'out', 'pb-pay-v1@1.0.0.wasm']));
    assert.match(
      dev.stderr,
      /^WARNING: pb-pay-v1@1\.0\.0\.wasm\.sigstore\.json \(its bundle\) is missing: dev workers load it, staging and production workers refuse it \(BINDING_MISSING\)/m,
    );
  });

  it('publishes artifact.wasm under the reference it carries, saying so in one WARNING', () => {
    const dir = workspace('apx-publish-name-');
    copyFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), join(dir, 'artifact.wasm'));
    ok(apx(dir, ['sign', 'artifact.wasm']));
    const r = ok(apx(dir, ['publish', '--store', 'store', 'artifact.wasm']));
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('WARNING'));
    assert.deepEqual(warnings, [
      'WARNING: artifact.wasm is not named <policy-id>@<semver>.wasm and workers never load it under that name: published it as pb-pay-v1@1.0.0.wasm',
    ]);
    assert.deepEqual(readdirSync(join(dir, 'store')).sort(), [
      'pb-pay-v1@1.0.0.wasm',
      'pb-pay-v1@1.0.0.wasm.sig',
      'pb-pay-v1@1.0.0.wasm.sigstore.json',
    ]);
  });

  it('compile --publish checks the destination before compiling or signing anything', () => {
    const dir = scratchDir('apx-publish-url-');
    ok(apx(dir, ['generate-key-pair']));
    writeFileSync(join(dir, 'a-file'), 'not a directory');
    for (const [url, message] of [
      ['gs:/apx-policy-artifacts', 'invalid store URL gs:/apx-policy-artifacts: gs: is not followed by //'],
      ['gcs://apx-policy-artifacts', 'invalid store URL gcs://apx-policy-artifacts: unsupported scheme gcs://'],
      ['s3://Bad_Bucket/x', 'invalid bucket name'],
      ['a-file', 'invalid store URL a-file: a-file is a file, not a directory'],
    ] as const) {
      oneLineError(apx(dir, ['compile', '--out', 'out', '--publish', url, PAYMENTS]), 1, message);
      assert.equal(existsSync(join(dir, 'out')), false, `${url}: nothing compiled`);
      assert.equal(existsSync(join(dir, 'keys/audit.log')), false, `${url}: nothing signed`);
    }
    const good = ok(apx(dir, ['compile', '--out', 'out', '--publish', 'store', PAYMENTS]));
    assert.match(good.stderr, /✓ Published: pb-pay-v1@1\.0\.0 to store/);
  });
});

/** Runs apx with APX_TEST_PAUSE_AT=step, sends SIGINT once it says it paused there, and waits for its end. */
async function interruptAt(cwd: string, args: string[], step: string): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { ...process.env, COSIGN_PASSWORD: PASSWORD, APX_AUDIT_LOG: 'keys/audit.log', APX_TEST_PAUSE_AT: step },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let paused = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (!paused && stderr.includes(`APX_TEST_PAUSED ${step}\n`)) {
      paused = true;
      child.kill('SIGINT');
    }
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  assert.ok(paused, `the command never paused at ${step}: ${stderr}`);
  return { status, stderr };
}

/** Every name in dir, dot-files included, recursively. */
function allNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** Per artifact, .wasm, .sig and .sigstore.json all present or all absent; no temporary file anywhere. */
function assertCompleteSets(dir: string, refs: string[]): 'all' | 'none' {
  const names = allNames(dir);
  assert.deepEqual(
    names.filter((n) => n.endsWith('.tmp')),
    [],
    `temporary files left: ${names.join(', ')}`,
  );
  const present = refs.map((ref) => ['.wasm', '.wasm.sig', '.wasm.sigstore.json'].map((s) => names.includes(`${ref}${s}`)));
  for (const [i, files] of present.entries()) {
    assert.ok(
      files.every((f) => f === files[0]),
      `partial set for ${refs[i]}: ${names.join(', ')}`,
    );
  }
  const all = present.every((f) => f[0]);
  assert.ok(all || present.every((f) => !f[0]), `some artifacts written, others not: ${names.join(', ')}`);
  return all ? 'all' : 'none';
}

const REFS = ['pb-pay-v1@1.0.0', 'pb-admin-v1@2.3.0', 'pb-catalog-v1@1.4.2'];

describe('Ctrl-C (SIGINT) during compile, sign and publish leaves no partial set (APX_TEST_PAUSE_AT)', () => {
  it('compile: interrupted before, while and after writing: nothing, or every complete set; no .tmp', async () => {
    const dir = scratchDir('apx-sigint-compile-');
    ok(apx(dir, ['generate-key-pair']));
    for (const [step, expected] of [
      ['compile:compiled', 'none'],
      ['write:temps-written', 'none'],
      ['write:committing', 'all'],
    ] as const) {
      const out = `out-${step.replace(/\W/g, '-')}`;
      const r = await interruptAt(dir, ['compile', '--out', out, ...SAMPLES], step);
      assert.equal(r.status, 130, r.stderr);
      assert.match(r.stderr, /^ERROR: interrupted by SIGINT; every set of files was written completely or not at all/m);
      assert.equal(assertCompleteSets(join(dir, out), REFS), expected, step);
    }
  });

  it('compile over a previous set: the previous set or the new one, each consistent (.sig verifies the .wasm beside it)', async () => {
    const dir = scratchDir('apx-sigint-previous-');
    ok(apx(dir, ['generate-key-pair']));
    ok(apx(dir, ['compile', '--out', 'out', '--env', 'staging', PAYMENTS]));
    for (const [step, env] of [
      ['write:temps-written', 'staging'],
      ['write:committing', 'production'],
    ] as const) {
      const r = await interruptAt(dir, ['compile', '--out', 'out', '--env', 'production', PAYMENTS], step);
      assert.equal(r.status, 130, r.stderr);
      assert.equal(assertCompleteSets(join(dir, 'out'), ['pb-pay-v1@1.0.0']), 'all');
      assert.equal(statementOf(join(dir, 'out/pb-pay-v1@1.0.0.wasm.sigstore.json')).predicate.environment, env, step);
      ok(
        apx(dir, [
          'verify-blob',
          '--key',
          'keys/cosign.pub',
          '--signature',
          'out/pb-pay-v1@1.0.0.wasm.sig',
          '--bundle',
          'out/pb-pay-v1@1.0.0.wasm.sigstore.json',
          'out/pb-pay-v1@1.0.0.wasm',
        ]),
      );
    }
  });

  it('sign: interrupted before renaming leaves no .sig, no bundle and no .tmp', async () => {
    const dir = workspace('apx-sigint-sign-');
    copyFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm'), join(dir, 'artifact.wasm'));
    const r = await interruptAt(dir, ['sign', 'artifact.wasm'], 'write:temps-written');
    assert.equal(r.status, 130, r.stderr);
    assert.deepEqual(
      allNames(dir).filter((n) => n.startsWith('artifact') || n.includes('.tmp')),
      ['artifact.wasm'],
    );
  });

  it('a temporary file of a killed run is removed by the next run', () => {
    const dir = workspace('apx-stale-tmp-');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const stale = `.pb-pay-v1@1.0.0.wasm.sig.apx-${dead}-0123456789ab.tmp`;
    writeFileSync(join(dir, stale), 'left by a killed run');
    ok(apx(dir, ['compile', PAYMENTS]));
    assert.equal(existsSync(join(dir, stale)), false);
  });

  it('publish to a directory store: nothing before the first object is stored, the whole version after', async () => {
    const dir = workspace('apx-sigint-publish-');
    for (const [step, expected] of [
      ['publish:start', 'none'],
      ['publish:stored:artifact.wasm.sig', 'all'],
      ['publish:stored:artifact.wasm.sigstore.json', 'all'],
    ] as const) {
      const store = `store-${step.replace(/\W/g, '-')}`;
      const r = await interruptAt(dir, ['publish', '--store', store, 'pb-pay-v1@1.0.0.wasm'], step);
      assert.equal(r.status, 130, r.stderr);
      assert.equal(assertCompleteSets(join(dir, store), ['pb-pay-v1@1.0.0']), expected, step);
    }
  });
});

describe('--key env://VAR, inline --signature, --json', () => {
  it("signs with cosign's encrypted key or a plain PKCS#8 PEM from a variable, never showing it", () => {
    const dir = workspace('apx-env-key-');
    writeFileSync(join(dir, 'blob'), 'signed from CI');
    const encrypted = readFileSync(join(dir, 'keys/cosign.key'), 'utf8');
    const r = ok(
      apx(dir, ['sign-blob', '--key', 'env://SIGNING_KEY', '--output-signature', 'blob.sig', 'blob'], {
        SIGNING_KEY: encrypted,
      }),
    );
    ok(apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'blob.sig', 'blob']));
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const plain = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(join(dir, 'ci.pub'), publicKey.export({ type: 'spki', format: 'pem' }).toString());
    ok(
      apx(dir, ['sign', 'pb-pay-v1@1.0.0.wasm', '--key', 'env://CI_KEY', '--env', 'staging'], {
        CI_KEY: plain,
        COSIGN_PASSWORD: undefined,
      }),
    );
    ok(apx(dir, ['verify-blob', '--key', 'ci.pub', '--signature', 'pb-pay-v1@1.0.0.wasm.sig', 'pb-pay-v1@1.0.0.wasm']));
    const wrongPassword = apx(dir, ['sign-blob', '--key', 'env://SIGNING_KEY', 'blob'], {
      SIGNING_KEY: encrypted,
      COSIGN_PASSWORD: 'wrong',
    });
    assert.equal(wrongPassword.status, 1);
    oneLineError(
      apx(dir, ['sign-blob', '--key', 'env://UNSET_KEY', 'blob']),
      1,
      'environment variable UNSET_KEY (--key env://UNSET_KEY) is empty or unset',
    );
    oneLineError(
      apx(dir, ['sign-blob', '--key', 'env://CI_KEY', 'blob'], { CI_KEY: readFileSync(join(dir, 'ci.pub'), 'utf8') }),
      1,
      'invalid private key in environment variable CI_KEY: PEM type "PUBLIC KEY" is not a private key',
    );
    const secretLines = [encrypted, plain].flatMap((pem) =>
      pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')),
    );
    const audit = readFileSync(join(dir, 'keys/audit.log'), 'utf8');
    assert.match(audit, /"key_ref":"env:\/\/SIGNING_KEY"/);
    for (const text of [r.stdout, r.stderr, wrongPassword.stderr, audit]) {
      for (const line of secretLines) assert.ok(!text.includes(line), 'the key never appears in output or the audit log');
    }
  });

  it('verify-blob takes the base64 signature itself as --signature, as cosign does', () => {
    const dir = workspace('apx-inline-sig-');
    ok(apx(dir, ['sign-blob', '--output-signature', 'sig', 'pb-pay-v1@1.0.0.wasm']));
    const inline = readFileSync(join(dir, 'sig'), 'utf8');
    ok(apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', inline, 'pb-pay-v1@1.0.0.wasm']));
    const other = Buffer.from(inline, 'base64');
    other[other.length - 1] = (other.at(-1) ?? 0) ^ 1;
    assert.equal(
      apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', other.toString('base64'), 'pb-pay-v1@1.0.0.wasm'])
        .status,
      1,
    );
    oneLineError(
      apx(dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'no-such.sig', 'pb-pay-v1@1.0.0.wasm']),
      1,
      'signature file not found: no-such.sig',
    );
  });

  it('compile, sign, sign-blob, verify-blob and publish print one JSON document on stdout with paths, digests and key id', () => {
    const dir = scratchDir('apx-json-');
    const keyId = /Key id: ([0-9a-f]{64})/.exec(ok(apx(dir, ['generate-key-pair'])).stderr)?.[1];
    const compiled = ok(apx(dir, ['compile', '--json', '--out', 'out', PAYMENTS]));
    assert.match(compiled.stderr, /✓ Compiled: out\/pb-pay-v1@1\.0\.0\.wasm/, 'human lines go to stderr');
    const doc = JSON.parse(compiled.stdout) as {
      artifacts: Array<{
        reference: string;
        artifact: { path: string; sha256: string };
        signature: { path: string; sha256: string };
        bundle: { path: string };
        keyId: string;
      }>;
    };
    const [a] = doc.artifacts;
    assert.equal(a?.reference, 'pb-pay-v1@1.0.0');
    assert.equal(a?.artifact.path, 'out/pb-pay-v1@1.0.0.wasm');
    assert.equal(a?.artifact.sha256, sha256(readFileSync(join(dir, 'out/pb-pay-v1@1.0.0.wasm'))));
    assert.equal(a?.signature.sha256, sha256(readFileSync(join(dir, 'out/pb-pay-v1@1.0.0.wasm.sig'))));
    assert.equal(a?.keyId, keyId);

    const signed = JSON.parse(ok(apx(dir, ['sign', '--json', '--env', 'staging', 'out/pb-pay-v1@1.0.0.wasm'])).stdout);
    assert.deepEqual([signed.reference, signed.environment, signed.keyId], ['pb-pay-v1@1.0.0', 'staging', keyId]);
    assert.equal(signed.bundle.path, 'out/pb-pay-v1@1.0.0.wasm.sigstore.json');

    const blob = JSON.parse(ok(apx(dir, ['sign-blob', '--json', 'out/pb-pay-v1@1.0.0.wasm'])).stdout);
    assert.equal(blob.blob.sha256, a?.artifact.sha256);
    assert.equal(blob.keyId, keyId);
    assert.match(blob.signature.base64, /^[A-Za-z0-9+/]+=*$/);

    const verified = JSON.parse(
      ok(
        apx(dir, [
          'verify-blob',
          '--json',
          '--key',
          'keys/cosign.pub',
          '--signature',
          blob.signature.base64,
          'out/pb-pay-v1@1.0.0.wasm',
        ]),
      ).stdout,
    );
    assert.deepEqual([verified.verified, verified.keyId, verified.blob.sha256], [true, keyId, a?.artifact.sha256]);

    const published = JSON.parse(ok(apx(dir, ['publish', '--json', '--store', 'store', 'out/pb-pay-v1@1.0.0.wasm'])).stdout);
    assert.deepEqual(
      [published.reference, published.outcome, published.environment, published.artifact.sha256],
      ['pb-pay-v1@1.0.0', 'created', 'staging', a?.artifact.sha256],
    );
  });

  it('compile takes any number of files (the 65th is no longer an "unexpected argument")', () => {
    const files = Array.from({ length: 100 }, (_, i) => `p${i}.yaml`);
    assert.equal(parseCommandArgs(compileCommand, files).positionals.length, 100);
  });
});

describe('apx hash-key', () => {
  const expected = sha256('demo-acme-prod-key');

  it('hashes the key from stdin; one trailing newline (echo) is removed with a WARNING; other whitespace refused', () => {
    const dir = scratchDir('apx-hash-key-');
    const run = (input: string, args: string[] = []) => {
      const r = spawnSync(process.execPath, [MAIN, 'hash-key', ...args], { cwd: dir, input, encoding: 'utf8' });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const exact = ok(run('demo-acme-prod-key'));
    assert.equal(exact.stdout, `${expected}\n`);
    assert.doesNotMatch(exact.stderr, /WARNING/);
    const echoed = ok(run('demo-acme-prod-key\n'));
    assert.equal(echoed.stdout, `${expected}\n`);
    assert.match(echoed.stderr, /^WARNING: removed one trailing \\n from the key \(echo adds one\)/m);
    assert.equal(ok(run('demo-acme-prod-key\r\n')).stdout, `${expected}\n`);
    oneLineError(run('demo-acme-prod-key\n\n'), 1, 'the API key has leading or trailing whitespace');
    oneLineError(run(' demo-acme-prod-key'), 1, 'the API key has leading or trailing whitespace');
    oneLineError(run(''), 1, 'the API key is empty');
    assert.equal(ok(run('demo-acme-prod-key\n', ['--raw'])).stdout, `${sha256('demo-acme-prod-key\n')}\n`);
    assert.deepEqual(JSON.parse(ok(run('demo-acme-prod-key', ['--json'])).stdout), { sha256: expected });
    // It is the hash the policy lists for that key (configs/samples/payments-api.yaml).
    assert.ok(readFileSync(PAYMENTS, 'utf8').includes(expected));
  });

  it('on a terminal, asks twice without echoing the key', async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined });
    const stderr = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (c.toString().includes('Enter API key')) stdin.write('demo-acme-prod-key\r');
    });
    const ctx: CliContext = { env: {}, cwd: process.cwd(), stdin, stdout, stderr };
    assert.equal(await runCli(['hash-key'], ctx), 0);
    assert.equal(out, `${expected}\n`);
    assert.match(err, /Enter API key: \nEnter API key again: \n/);
    assert.ok(!err.includes('demo-acme-prod-key'), 'the key is never echoed');
  });
});

describe('the audit log goes under the user configuration directory, never ./keys', () => {
  it('$XDG_CONFIG_HOME/apx/audit.log, else ~/.config/apx/audit.log; APX_AUDIT_LOG wins', () => {
    const dir = scratchDir('apx-audit-default-');
    ok(apx(dir, ['generate-key-pair']));
    writeFileSync(join(dir, 'blob'), 'x');
    const cfg = join(dir, 'cfg');
    ok(apx(dir, ['sign-blob', 'blob'], { APX_AUDIT_LOG: undefined, XDG_CONFIG_HOME: cfg }));
    assert.match(readFileSync(join(cfg, 'apx/audit.log'), 'utf8'), /"operation":"sign-blob"/);
    const home = join(dir, 'home');
    mkdirSync(home);
    ok(apx(dir, ['sign-blob', 'blob'], { APX_AUDIT_LOG: undefined, XDG_CONFIG_HOME: undefined, HOME: home }));
    assert.match(readFileSync(join(home, '.config/apx/audit.log'), 'utf8'), /"operation":"sign-blob"/);
    ok(apx(dir, ['sign-blob', 'blob'], { APX_AUDIT_LOG: 'elsewhere.log' }));
    assert.match(readFileSync(join(dir, 'elsewhere.log'), 'utf8'), /"operation":"sign-blob"/);
    assert.equal(existsSync(join(dir, 'keys/audit.log')), false, 'nothing in ./keys');
  });
});

describe('after a key rotation, signing with the retired key is refused, naming the key to use', () => {
  it('keys rotate --retire, then trust signer retire', () => {
    const dir = workspace('apx-retired-');
    const run = (args: string[], env: Record<string, string | undefined> = {}) => apx(dir, args, env);
    for (const k of ['root', 'targets', 'snapshot', 'timestamp', 'prod'])
      ok(run(['generate-key-pair', '--output-key-prefix', `keys/${k}`]));
    const oldId = /Key id: ([0-9a-f]{64})/.exec(ok(run(['public-key', '--key', 'keys/cosign.pub'])).stderr)?.[1];
    assert.ok(oldId);
    const signers = ['--key', 'keys/prod.key', '--key', 'keys/snapshot.key', '--key', 'keys/timestamp.key'];
    ok(
      run([
        'trust',
        'init',
        '--root-key',
        'keys/root.key',
        '--targets-key',
        'keys/targets.key',
        '--snapshot-key',
        'keys/snapshot.key',
        '--timestamp-key',
        'keys/timestamp.key',
        '--approver',
        'dev=keys/prod.pub',
        '--approver',
        'staging=keys/prod.pub',
        '--approver',
        'production=keys/prod.pub',
        '--key',
        'keys/prod.key',
      ]),
    );
    ok(run(['trust', 'signer', 'add', '--env', 'production', 'keys/cosign.pub', ...signers]));
    const rotated = ok(
      run(['keys', 'rotate', '--env', 'production', '--output-key-prefix', 'keys/cosign-2', '--retire', oldId, ...signers]),
    );
    assert.match(rotated.stderr, /Sign for production with it from now on: --key keys\/cosign-2\.key/);
    const newId = /New key: {3}keys\/cosign-2\.key \(key id ([0-9a-f]{64})\)/.exec(rotated.stderr)?.[1];
    assert.ok(newId, rotated.stderr);
    // The default key (keys/cosign.key) is the retired one.
    oneLineError(
      run(['sign', 'pb-pay-v1@1.0.0.wasm', '--env', 'production']),
      1,
      new RegExp(
        `^ERROR: refusing to sign for production with keys/cosign\\.key \\(key id ${oldId.slice(0, 12)}\\): the key you gave was retired at \\S+; sign with ${newId} \\(keys/cosign-2\\.key\\): --key keys/cosign-2\\.key`,
      ),
    );
    oneLineError(run(['compile', '--env', 'production', '--out', 'prod', PAYMENTS]), 1, 'the key you gave was retired at');
    assert.equal(existsSync(join(dir, 'prod')), false);
    // Other environments still trust it; the new key signs for production.
    ok(run(['sign', 'pb-pay-v1@1.0.0.wasm', '--env', 'dev']));
    ok(run(['sign', 'pb-pay-v1@1.0.0.wasm', '--env', 'production', '--key', 'keys/cosign-2.key']));

    // The trust repository's own retirement (a validity window that has ended) is refused too.
    ok(run(['trust', 'signer', 'retire', '--env', 'production', 'keys/cosign-2.pub', ...signers]));
    oneLineError(
      run(['sign', 'pb-pay-v1@1.0.0.wasm', '--env', 'production', '--key', 'keys/cosign-2.key']),
      1,
      `refusing to sign for production with keys/cosign-2.key (key id ${newId.slice(0, 12)}): the key you gave was retired at`,
    );
  });
});

describe('apx completion', () => {
  const script = (shell: string) => ok(apx(scratchDir('apx-completion-'), ['completion', shell])).stdout;

  it('bash: the script sources and registers apx, with every command and flag from the specs', () => {
    const r = spawnSync('bash', ['-c', `source <(node ${JSON.stringify(MAIN)} completion bash); complete -p apx`], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'complete -o default -F _apx apx');
    const bash = script('bash');
    for (const word of ['compile', 'sign', 'publish', 'hash-key', 'completion', 'trust', '--publish', '--json']) {
      assert.ok(bash.includes(word), word);
    }
    // Completing "apx comp" and "apx publish --e" in bash itself.
    const complete = (line: string) => {
      const words = line.split(' ');
      const program = `source <(node ${JSON.stringify(MAIN)} completion bash); COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _apx; echo "\${COMPREPLY[@]}"`;
      const c = spawnSync('bash', ['-c', program], { encoding: 'utf8' });
      assert.equal(c.status, 0, c.stderr);
      return c.stdout.trim().split(/\s+/);
    };
    assert.deepEqual(complete('apx comp'), ['compile', 'completion']);
    assert.deepEqual(complete('apx publish --e'), ['--env']);
    assert.deepEqual(complete('apx sign --env p'), ['production']);
    assert.deepEqual(complete('apx trust sig').sort(), ['sign', 'signer']);
  });

  it('zsh and fish: the scripts parse (skipped when the shell is not installed)', (t) => {
    for (const [shell, check] of [
      ['zsh', ['-n']],
      ['fish', ['--no-execute']],
    ] as const) {
      if (spawnSync(shell, ['--version']).error) {
        t.diagnostic(`${shell} is not installed: its script is not checked`);
        continue;
      }
      const file = join(scratchDir('apx-completion-'), `apx.${shell}`);
      writeFileSync(file, script(shell));
      const r = spawnSync(shell, [...check, file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${shell}: ${r.stderr}`);
      if (shell === 'zsh') {
        // Registered with compinit's compdef.
        const z = spawnSync(
          'zsh',
          ['-f', '-c', `autoload -U compinit; compinit -u -D; source ${file}; print -r -- $_comps[apx]`],
          {
            encoding: 'utf8',
          },
        );
        assert.equal(z.stdout.trim(), '_apx', z.stderr);
      } else {
        // fish completes for real: `complete -C LINE` prints the candidates.
        const candidates = (line: string) =>
          spawnSync('fish', ['-c', `source ${file}; complete -C '${line}'`], { encoding: 'utf8' })
            .stdout.split('\n')
            .map((l) => l.split('\t')[0])
            .filter(Boolean);
        assert.deepEqual(candidates('apx comp'), ['compile', 'completion']);
        assert.deepEqual(candidates('apx sign --env p'), ['production']);
      }
    }
  });
});
