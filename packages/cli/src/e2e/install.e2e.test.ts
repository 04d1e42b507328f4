// The installable CLI: `npm run pack:cli` packs apx-<version>.tgz, which `npm install -g`
// installs into a fresh prefix, and the installed `apx` (not the repository's) runs the runbook:
// generate-key-pair, compile, sign, verify, and a worker answering /readyz. One pack and one
// install serve every case (an install takes 15-30 s). The public dependencies come from the
// npm cache the workspace install filled (--prefer-offline); the @apx/* packages are bundled,
// so no registry is ever asked for that scope (not ours on the public registry).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { PAYMENTS_GET, REPO, type Run, scratchDir, WorkerProcess } from './harness.js';

interface PackSummary {
  tarball: string;
  name: string;
  version: string;
  size: number;
  entryCount: number;
  bundled: string[];
  files: string[];
}

/** The packages that must stay optional peers: heavy, and needed only by one scheme each. */
const OPTIONAL_PEERS = [
  '@aws-sdk/client-kms',
  '@aws-sdk/client-s3',
  '@google-cloud/kms',
  '@google-cloud/secret-manager',
  '@google-cloud/storage',
  'pkcs11js',
];

/** Files that are tests, test support, fixtures, or maps and declarations of sources not shipped. */
const NOT_RUNTIME = /(^|\/)(e2e|testing|test-support|fixtures)\/|\.test\.|\.map$|\.d\.ts$|\.tsbuildinfo$|(^|\/)src\//;

/** The environment for npm: the caller's, minus what an enclosing `npm run` says about itself. */
function npmEnvironment(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] =>
        e[1] !== undefined && !/^npm_(package|lifecycle)_|^npm_config_(prefix|global|location|workspaces?)$/i.test(e[0]),
    ),
  );
}

function run(command: string, args: string[], cwd: string, env: Record<string, string>): Run {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function succeeded(r: Run, what: string): Run {
  assert.equal(r.status, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

describe('e2e: the installable CLI tarball (npm run pack:cli, npm install -g)', () => {
  const out = scratchDir('apx-pack-out-');
  const prefix = scratchDir('apx-prefix-');
  const home = scratchDir('apx-installed-');
  const bin = join(prefix, 'bin', 'apx');
  let summary: PackSummary;
  let installLog = '';

  /** The installed `apx`, found on PATH as a user finds it, run in a directory outside the repository. */
  const apx = (args: string[], env: Record<string, string> = {}): Run =>
    run('apx', args, home, {
      ...npmEnvironment(),
      PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`,
      COSIGN_PASSWORD: 'install-e2e',
      APX_AUDIT_LOG: 'keys/audit.log',
      ...env,
    });

  before(
    () => {
      const packed = succeeded(
        run(process.execPath, [join(REPO, 'scripts/pack-cli.mjs'), '--out', out, '--json'], REPO, npmEnvironment()),
        'pack',
      );
      summary = JSON.parse(packed.stdout) as PackSummary;
      const install = succeeded(
        run(
          'npm',
          [
            'install',
            '--global',
            '--prefix',
            prefix,
            summary.tarball,
            '--prefer-offline',
            '--no-audit',
            '--no-fund',
            '--loglevel',
            'http',
          ],
          out,
          npmEnvironment(),
        ),
        'npm install -g',
      );
      installLog = `${install.stdout}\n${install.stderr}`;
    },
    { timeout: 180_000 },
  );

  it('packs apx-<version>.tgz with the @apx packages bundled and no tests, fixtures or source maps', () => {
    const cliVersion = (JSON.parse(readFileSync(join(REPO, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;
    assert.equal(summary.name, 'apx');
    assert.equal(summary.tarball, join(out, `apx-${cliVersion}.tgz`));
    assert.deepEqual([...summary.bundled].sort(), [
      '@apx/core',
      '@apx/kms',
      '@apx/policy',
      '@apx/sign',
      '@apx/storage',
      '@apx/trust',
      '@apx/worker',
    ]);
    for (const f of ['bin/apx.js', 'dist/main.js', 'package.json', 'node_modules/@apx/core/dist/index.js']) {
      assert.ok(summary.files.includes(f), `${f} is packed`);
    }
    assert.deepEqual(
      summary.files.filter((f) => NOT_RUNTIME.test(f)),
      [],
      'no test, test support, fixture, map or declaration is packed',
    );
    // Only the bundled packages live under node_modules: no public dependency is bundled.
    assert.deepEqual(
      summary.files.filter((f) => f.startsWith('node_modules/') && !f.startsWith('node_modules/@apx/')),
      [],
    );
    assert.equal(summary.entryCount, summary.files.length);
    assert.ok(summary.size < 2 * 1024 * 1024, `${summary.size} bytes packed`);
  });

  it('installs into a fresh prefix without asking any registry for an @apx package', () => {
    assert.equal(realpathSync(bin), realpathSync(join(prefix, 'lib/node_modules/apx/bin/apx.js')));
    assert.match(installLog, /http fetch GET \d+ https?:\/\//, "the log lists npm's registry requests");
    assert.doesNotMatch(installLog, /https?:\/\/\S*\/@apx(%2f|\/)/i, 'no registry request for the @apx scope');
    const manifest = JSON.parse(readFileSync(join(prefix, 'lib/node_modules/apx/package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      bundleDependencies: string[];
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    const internal = Object.keys(manifest.dependencies).filter((d) => d.startsWith('@apx/'));
    assert.deepEqual([...internal].sort(), [...manifest.bundleDependencies].sort(), 'every @apx dependency is bundled');
    for (const peer of OPTIONAL_PEERS) {
      assert.equal(manifest.dependencies[peer], undefined, `${peer} is not a dependency`);
      assert.ok(manifest.peerDependencies[peer], `${peer} is a peer`);
      assert.equal(manifest.peerDependenciesMeta[peer]?.optional, true, `${peer} is optional`);
    }
    // npm installs no optional peer: the cloud SDKs are absent from the installed tree.
    const r = run(
      process.execPath,
      ['-e', `require.resolve(${JSON.stringify('@google-cloud/secret-manager')})`],
      join(prefix, 'lib/node_modules/apx'),
      npmEnvironment(),
    );
    assert.notEqual(r.status, 0, 'the Secret Manager SDK is not installed');
  });

  it('runs the runbook from the installed apx: generate-key-pair, compile (signs), sign-blob, verify-blob, verify', () => {
    const version = succeeded(apx(['--version']), 'apx --version');
    assert.equal(version.stdout.trim(), `apx ${summary.version}`);
    succeeded(apx(['generate-key-pair']), 'generate-key-pair');
    copyFileSync(join(REPO, 'configs/samples/payments-api.yaml'), join(home, 'payments-api.yaml'));
    const compiled = succeeded(apx(['compile', 'payments-api.yaml']), 'compile');
    assert.match(compiled.stdout, /✓ Compiled: pb-pay-v1@1\.0\.0\.wasm/);
    assert.match(compiled.stdout, /✓ Signed: +pb-pay-v1@1\.0\.0\.wasm\.sig/);
    succeeded(
      apx(['sign-blob', '--key', 'keys/cosign.key', '--output-signature', 'again.sig', 'pb-pay-v1@1.0.0.wasm']),
      'sign-blob',
    );
    const verified = succeeded(
      apx(['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'again.sig', 'pb-pay-v1@1.0.0.wasm']),
      'verify-blob',
    );
    assert.match(`${verified.stdout}${verified.stderr}`, /Verified OK/);
    // apx verify checks compile's own signature and bundle as a worker would.
    const wouldLoad = succeeded(apx(['verify', 'pb-pay-v1@1.0.0.wasm']), 'verify');
    assert.match(wouldLoad.stdout, /✓ pb-pay-v1@1\.0\.0 would load in dev/);
  });

  it('starts the installed apx worker on the compiled artifacts: /readyz 200 and a decision', async () => {
    const store = join(home, 'store');
    mkdirSync(store, { recursive: true });
    for (const suffix of ['', '.sig', '.sigstore.json']) {
      copyFileSync(join(home, `pb-pay-v1@1.0.0.wasm${suffix}`), join(store, `pb-pay-v1@1.0.0.wasm${suffix}`));
    }
    const worker = await WorkerProcess.start(home, { APX_STORE: store }, [bin, 'worker']);
    try {
      await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
      const ready = await worker.get('/readyz');
      assert.equal(ready.status, 200, ready.text);
      const decision = await worker.decide('pb-pay-v1', PAYMENTS_GET);
      assert.equal(decision.body.allow, true);
    } finally {
      assert.equal(await worker.stop(), 0);
    }
  });

  // (The same code names @aws-sdk/client-kms for awskms:// and @google-cloud/storage for gs://.)
  it('names the package to install, in one line, when a scheme needs an optional peer', async () => {
    const cases: Array<{ args: string[]; env?: Record<string, string>; message: string }> = [
      {
        args: ['sign-blob', '--key', 'gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k', 'payments-api.yaml'],
        message: '@google-cloud/kms',
      },
      {
        // A KMS emulator endpoint is read with the SDK's own gRPC: the same line, not a stack.
        args: ['sign-blob', '--key', 'gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k', 'payments-api.yaml'],
        env: { APX_GCPKMS_ENDPOINT: '127.0.0.1:1' },
        message: '@google-cloud/kms',
      },
      {
        args: [
          'sign-blob',
          '--key',
          'pkcs11:token=apx;object=signing?module-path=/nonexistent/libsofthsm2.so&pin-value=1',
          'payments-api.yaml',
        ],
        message: 'pkcs11js',
      },
      { args: ['worker'], env: { APX_STORE: 's3://bucket/policies', APX_PORT: '0' }, message: '@aws-sdk/client-s3' },
    ];
    for (const c of cases) {
      const r = apx(c.args, c.env);
      assert.notEqual(r.status, 0, `apx ${c.args.join(' ')} fails`);
      assert.match(
        r.stderr,
        new RegExp(`needs? (the )?${c.message.replace(/[/.]/g, '\\$&')}(@\\d+)?(,| package,) which is not installed`),
        r.stderr,
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    // A worker whose public key is in Secret Manager keeps running, not ready, and says why.
    const worker = await WorkerProcess.start(home, { APX_STORE: join(home, 'store') }, [
      bin,
      'worker',
      '--public-key',
      'projects/p/secrets/apx-artifact-pubkey/versions/latest',
    ]);
    try {
      const refused = await worker.waitFor((l) => l.reason === 'PUBLIC_KEY_UNAVAILABLE', 'refusal');
      assert.match(refused.message, /need the @google-cloud\/secret-manager package, which is not installed/);
      assert.equal((await worker.get('/readyz')).status, 503);
    } finally {
      await worker.stop();
    }
  });
});
