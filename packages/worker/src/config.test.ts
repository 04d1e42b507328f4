import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ApxError } from '@apx/core';
import { configProblems, MAX_WORKERS, resolveConfig } from './config.js';

// A scratch directory for the path settings: a directory, a file, nothing yet.
const dir = mkdtempSync(join(tmpdir(), 'apx-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const stateDir = join(dir, 'state');
mkdirSync(stateDir);
const aFile = join(dir, 'a-file');
writeFileSync(aFile, 'not a directory');
const rootFile = join(dir, '1.root.json');
writeFileSync(rootFile, '{}');

/** Every problem resolveConfig reports for these settings, as `message; hint` lines. */
function problems(env: Record<string, string>, flags: Record<string, string> = {}): string[] {
  try {
    resolveConfig(env, flags, { cwd: dir });
  } catch (err) {
    const found = configProblems(err);
    assert.ok(found, `not an APX error: ${String(err)}`);
    return found.map((p: ApxError) => `${p.message}; ${p.hint ?? ''}`);
  }
  return [];
}

describe('worker configuration', () => {
  it('runs on safe embedded defaults', () => {
    const { config, warnings } = resolveConfig({});
    assert.equal(config.env, 'dev');
    assert.equal(config.store, './artifacts');
    assert.equal(config.publicKey, 'keys/cosign.pub');
    assert.equal(config.strict, true);
    assert.equal(config.allowList, undefined);
    assert.deepEqual(warnings, []);
  });

  it('lets flags override the environment', () => {
    const { config } = resolveConfig({ APX_PORT: '9000', APX_STORE: 'gs://a/b' }, { port: '9100' });
    assert.equal(config.port, 9100);
    assert.equal(config.store, 'gs://a/b');
  });

  it("reads the runbook's ALLOWED_POLICY_VERSIONS and APX_POLICIES", () => {
    const { config } = resolveConfig({ ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0', APX_POLICIES: 'pb-pay-v1@1.0.0, pb-admin' });
    assert.ok(config.allowList?.admits('pb-pay-v1', '1.1.0'));
    assert.deepEqual(config.policies, [
      { policyId: 'pb-pay-v1', version: '1.0.0' },
      { policyId: 'pb-admin', version: undefined },
    ]);
  });

  it('warns when strict mode is off outside production', () => {
    const { warnings } = resolveConfig({ APX_STRICT_MODE: 'false' });
    assert.match(warnings[0] ?? '', /strict mode disabled/);
  });

  it('refuses unsafe production settings', () => {
    const prodEnv = { APX_ENV: 'production', APX_STATE_DIR: stateDir };
    assert.throws(() => resolveConfig({ ...prodEnv, APX_STRICT_MODE: 'false', ALLOWED_POLICY_VERSIONS: '1.0.0' }), {
      code: 'CONFIG_UNSAFE',
      message: 'refusing to start in production with strict mode disabled',
    });
    assert.throws(() => resolveConfig(prodEnv), {
      code: 'CONFIG_UNSAFE',
      message: 'refusing to start in production without an allow-list',
    });
    assert.throws(() => resolveConfig({ ...prodEnv, ALLOWED_POLICY_VERSIONS: '1.0.0', APX_REQUIRE_BINDING: 'false' }), {
      code: 'CONFIG_UNSAFE',
      message: 'refusing to start in production without signed bindings',
    });
    const prod = resolveConfig({ ...prodEnv, ALLOWED_POLICY_VERSIONS: '1.0.0' }).config;
    assert.equal(prod.env, 'production');
    assert.equal(prod.requireBinding, true);
    assert.equal(prod.stateDir, stateDir);
    assert.equal(resolveConfig({ APX_ENV: 'staging', APX_STATE_DIR: stateDir }).config.requireBinding, true);
    assert.equal(resolveConfig({}).config.requireBinding, false);
  });

  it('requires APX_STATE_DIR (persistent rollback floors) in staging and production', () => {
    for (const env of ['staging', 'production']) {
      assert.throws(
        () => resolveConfig({ APX_ENV: env, ALLOWED_POLICY_VERSIONS: '1.0.0' }),
        (err: Error & { code?: string; hint?: string }) => {
          assert.equal(err.code, 'CONFIG_UNSAFE');
          assert.equal(err.message, `refusing to start in ${env} without APX_STATE_DIR`);
          assert.match(err.hint ?? '', /set APX_STATE_DIR/);
          return true;
        },
      );
    }
    assert.equal(resolveConfig({}).config.stateDir, undefined);
  });

  it('reads APX_ALLOW_ROLLBACK as exact references', () => {
    const { config } = resolveConfig({ APX_ALLOW_ROLLBACK: 'pb-pay-v1@1.0.0, pb-admin@2.0.0' });
    assert.deepEqual([...config.allowRollback], ['pb-pay-v1@1.0.0', 'pb-admin@2.0.0']);
    assert.equal(resolveConfig({}).config.allowRollback.size, 0);
    assert.throws(() => resolveConfig({ APX_ALLOW_ROLLBACK: 'pb-pay-v1@^1.0.0' }), {
      code: 'CONFIG_INVALID',
      message:
        'invalid APX_ALLOW_ROLLBACK="pb-pay-v1@^1.0.0": "pb-pay-v1@^1.0.0" is not an exact reference; list references such as pb-pay-v1@1.0.0',
    });
  });

  it('names malformed settings', () => {
    assert.throws(() => resolveConfig({ APX_PORT: 'http' }), { code: 'CONFIG_INVALID', message: 'invalid APX_PORT="http"' });
    assert.throws(() => resolveConfig({ APX_ENV: 'qa' }), { message: 'invalid APX_ENV="qa"' });
    assert.throws(() => resolveConfig({ APX_POLICIES: 'PB@x' }), {
      message: 'invalid APX_POLICIES="PB@x": "PB@x" is not a policy (pb-pay-v1) or exact reference (pb-pay-v1@1.0.0)',
    });
  });
});

describe('worker settings are checked at start, one problem per line', () => {
  it('reports every problem at once, not only the first', () => {
    const found = problems({
      APX_PORT: '99999',
      APX_HOST: 'not-a-host!',
      APX_RELOAD_INTERVAL: '30s',
      APX_STATE_DIR: aFile,
      ALLOWED_POLICY_VERSIONS: '1.0',
    });
    assert.equal(found.length, 5, found.join('\n'));
    for (const name of ['APX_PORT', 'APX_HOST', 'APX_RELOAD_INTERVAL', 'APX_STATE_DIR', 'ALLOWED_POLICY_VERSIONS']) {
      assert.equal(found.filter((l) => l.includes(name)).length, 1, `one line for ${name}:\n${found.join('\n')}`);
    }
  });

  it('ports: a whole number from 0 to 65535', () => {
    for (const bad of ['-1', '65536', '80.5', '1e3', '0x50', 'http']) {
      assert.deepEqual(problems({ APX_PORT: bad }), [
        `invalid APX_PORT="${bad}"; use a port number from 0 to 65535 (0 picks a free one)`,
      ]);
    }
    for (const good of ['0', '8080', '65535']) assert.equal(resolveConfig({ APX_PORT: good }).config.port, Number(good));
  });

  it('APX_GRPC_PORT: off unless set, a port, never APX_PORT', () => {
    assert.equal(resolveConfig({}).config.grpcPort, undefined);
    assert.equal(resolveConfig({ APX_GRPC_PORT: '9191' }).config.grpcPort, 9191);
    assert.equal(resolveConfig({ APX_GRPC_PORT: '1' }, { 'grpc-port': '9292' }).config.grpcPort, 9292);
    // Both 0: two free ports.
    assert.equal(resolveConfig({ APX_GRPC_PORT: '0', APX_PORT: '0' }).config.grpcPort, 0);
    assert.deepEqual(problems({ APX_GRPC_PORT: '91910' }), [
      'invalid APX_GRPC_PORT="91910"; use a port number from 0 to 65535 (0 picks a free one)',
    ]);
    assert.deepEqual(problems({ APX_GRPC_PORT: '8080' }), [
      'APX_GRPC_PORT=8080 is also APX_PORT: the gRPC and HTTP services need a port each; set APX_GRPC_PORT to another port (9191 is customary for ext_authz), or unset it to serve HTTP only',
    ]);
  });

  it('APX_WORKERS: 1 in dev, every available CPU in staging and production, a whole number from 1 to 256', () => {
    const cpus = Math.min(MAX_WORKERS, availableParallelism());
    const staged = { APX_STATE_DIR: stateDir };
    assert.equal(resolveConfig({}).config.workers, 1);
    assert.equal(resolveConfig({ APX_ENV: 'staging', ...staged }).config.workers, cpus);
    assert.equal(resolveConfig({ APX_ENV: 'production', ...staged, ALLOWED_POLICY_VERSIONS: '1.0.0' }).config.workers, cpus);
    assert.equal(resolveConfig({ APX_WORKERS: '4' }).config.workers, 4);
    assert.equal(resolveConfig({ APX_ENV: 'staging', ...staged, APX_WORKERS: '1' }).config.workers, 1);
    assert.equal(resolveConfig({ APX_WORKERS: '2' }, { workers: '3' }).config.workers, 3);
    for (const bad of ['0', '-1', '257', '1.5', '2e1', 'auto', 'max']) {
      assert.deepEqual(problems({ APX_WORKERS: bad }), [
        `invalid APX_WORKERS="${bad}"; use a whole number of processes from 1 to 256 (1: one process)`,
      ]);
    }
  });

  it('hosts: an IP address or a host name', () => {
    assert.deepEqual(problems({}, { host: 'not-a-host!' }), [
      'invalid APX_HOST="not-a-host!"; use an IP address of this machine (127.0.0.1; 0.0.0.0 or :: for every interface) or a host name',
    ]);
    assert.deepEqual(problems({ APX_HOST: '[::1]' }), ['invalid APX_HOST="[::1]"; write the IPv6 address without brackets: ::1']);
    for (const bad of ['a b', 'http://localhost', '-leading.example', 'under_score.example']) {
      assert.equal(problems({ APX_HOST: bad }).length, 1, bad);
    }
    for (const good of ['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost', 'worker-1.internal.example.com']) {
      assert.equal(resolveConfig({ APX_HOST: good }).config.host, good);
    }
  });

  it('durations: whole seconds, with the unit in the message', () => {
    assert.deepEqual(problems({ APX_RELOAD_INTERVAL: '30s' }), [
      'invalid APX_RELOAD_INTERVAL="30s"; use a whole number of seconds from 0 to 86400 (0 disables reloading), without a unit (30 means seconds)',
    ]);
    assert.deepEqual(problems({ APX_KEY_REFRESH_INTERVAL: '0' }), [
      'invalid APX_KEY_REFRESH_INTERVAL="0"; use a whole number of seconds from 1 to 86400',
    ]);
    assert.deepEqual(problems({ APX_TRUST_GRACE: '1.5' }), [
      'invalid APX_TRUST_GRACE="1.5"; use a whole number of seconds from 0 to 2592000',
    ]);
    const { config } = resolveConfig({ APX_RELOAD_INTERVAL: '0', APX_KEY_REFRESH_INTERVAL: '60', APX_TRUST_GRACE: '10' });
    assert.deepEqual([config.reloadIntervalMs, config.keyRefreshMs, config.trustGraceMs], [0, 60_000, 10_000]);
  });

  it('directories: APX_STATE_DIR and APX_CACHE_DIR must be directories or creatable', () => {
    assert.deepEqual(problems({ APX_STATE_DIR: aFile }), [
      `APX_STATE_DIR="${aFile}" is a file, not a directory; set APX_STATE_DIR to a directory the worker can write (it is created if missing)`,
    ]);
    assert.deepEqual(problems({ APX_CACHE_DIR: 'a-file/cache' }), [
      'APX_CACHE_DIR="a-file/cache": a-file is a file, not a directory; set APX_CACHE_DIR to a directory the worker can write (it is created if missing)',
    ]);
    // Existing, or creatable under an existing directory: accepted as written.
    const ok = resolveConfig({ APX_STATE_DIR: stateDir, APX_CACHE_DIR: 'not/yet/there' }, {}, { cwd: dir }).config;
    assert.deepEqual([ok.stateDir, ok.cacheDir], [stateDir, 'not/yet/there']);
  });

  it('APX_TRUST_ROOT: an existing file, and only with a trust repository', () => {
    const repo = { APX_TRUST_REPOSITORY: 'store', APX_STATE_DIR: stateDir };
    assert.deepEqual(problems({ ...repo, APX_TRUST_ROOT: 'missing.json' }), [
      `APX_TRUST_ROOT="missing.json": no such file; set APX_TRUST_ROOT to a copy of the repository's tuf/1.root.json obtained out of band`,
    ]);
    assert.deepEqual(problems({ ...repo, APX_TRUST_ROOT: stateDir }), [
      `APX_TRUST_ROOT="${stateDir}" is a directory, not a file; set APX_TRUST_ROOT to a copy of the repository's tuf/1.root.json obtained out of band`,
    ]);
    assert.deepEqual(problems({ APX_TRUST_ROOT: rootFile }), [
      'APX_TRUST_ROOT is set without APX_TRUST_REPOSITORY: it would be ignored; set APX_TRUST_REPOSITORY too (the root belongs to that repository), or unset APX_TRUST_ROOT',
    ]);
    assert.equal(resolveConfig({ ...repo, APX_TRUST_ROOT: rootFile }).config.trustRoot, rootFile);
  });

  it('APX_SIGSTORE_TRUSTED_ROOT: an existing file', () => {
    assert.deepEqual(problems({ APX_SIGSTORE_TRUSTED_ROOT: 'missing.json' }), [
      'APX_SIGSTORE_TRUSTED_ROOT="missing.json": no such file; set APX_SIGSTORE_TRUSTED_ROOT to the trusted_root.json of your Sigstore instance',
    ]);
    assert.equal(resolveConfig({ APX_SIGSTORE_TRUSTED_ROOT: rootFile }).config.sigstoreTrustedRoot, rootFile);
  });

  it('APX_TRUST_REPOSITORY and APX_STORE: "store", a known store URL or an existing directory', () => {
    const repo = { APX_STATE_DIR: stateDir };
    assert.deepEqual(problems({ ...repo, APX_TRUST_REPOSITORY: 'Store' }), [
      'APX_TRUST_REPOSITORY="Store": no such directory; use "store" for tuf/ in APX_STORE, or another store: a directory (./artifacts), file:///dir, gs://bucket/prefix, s3://bucket/prefix, oci://host/repo',
    ]);
    assert.equal(problems({ ...repo, APX_TRUST_REPOSITORY: 'ftp://host/tuf' }).length, 1);
    assert.match(
      problems({ APX_STORE: 'http://host/artifacts' })[0] ?? '',
      /^invalid APX_STORE="http:\/\/host\/artifacts"; unsupported scheme http:\/\//,
    );
    for (const good of ['store', 'gs://bucket/tuf', 'oci://registry.example/tuf', stateDir]) {
      assert.equal(resolveConfig({ ...repo, APX_TRUST_REPOSITORY: good }).config.trustRepository, good);
    }
  });

  it('APX_POLICIES: each entry a policy or exact reference, each policy once', () => {
    assert.deepEqual(problems({ APX_POLICIES: 'pb-pay-v1@1.0, PB' }), [
      'invalid APX_POLICIES="pb-pay-v1@1.0, PB": "pb-pay-v1@1.0" is not a policy (pb-pay-v1) or exact reference (pb-pay-v1@1.0.0); fix or remove "pb-pay-v1@1.0"',
      'invalid APX_POLICIES="pb-pay-v1@1.0, PB": "PB" is not a policy (pb-pay-v1) or exact reference (pb-pay-v1@1.0.0); fix or remove "PB"',
    ]);
    assert.match(problems({ APX_POLICIES: 'pb-pay-v1@1.0.0,pb-pay-v1' })[0] ?? '', /pb-pay-v1 is named more than once/);
    assert.match(problems({ APX_POLICIES: ' , ' })[0] ?? '', /^invalid APX_POLICIES=","; the list names nothing/);
  });

  it('ALLOWED_POLICY_VERSIONS: a partial version never silently means a range', () => {
    assert.deepEqual(problems({ ALLOWED_POLICY_VERSIONS: '1.0' }), [
      'invalid entry "1.0" in ALLOWED_POLICY_VERSIONS: 1.0 is not a full version (semver would read it as ~1.0.0); write the exact version (1.0.0) or the range you mean (~1.0.0)',
    ]);
    assert.equal(problems({ ALLOWED_POLICY_VERSIONS: '1' }).length, 1);
    // Written out, the same ranges are accepted.
    const list = resolveConfig({ ALLOWED_POLICY_VERSIONS: '~1.0.0,^2.0.0' }).config.allowList;
    assert.ok(list?.admits('pb-pay-v1', '1.0.7'));
    assert.equal(list?.admits('pb-pay-v1', '1.1.0'), false);
  });

  it('ALLOWED_POLICY_VERSIONS in production: no wildcard, nothing that admits every version', () => {
    const prod = { APX_ENV: 'production', APX_STATE_DIR: stateDir };
    for (const bad of [
      '*',
      'x',
      '1',
      '1.0',
      '1.x',
      '1.0.x',
      '>=0.0.0',
      '>=1.0.0',
      '<2.0.0',
      '~1.4',
      'pb-pay-v1@*',
      '^1.2.0 || >=3.0.0',
    ]) {
      const found = problems({ ...prod, ALLOWED_POLICY_VERSIONS: bad });
      assert.equal(found.length, 1, `${bad}: ${found.join('\n')}`);
      assert.ok(found[0]?.includes(`"${bad}"`), found[0]);
    }
    assert.deepEqual(problems({ ...prod, ALLOWED_POLICY_VERSIONS: '*' }), [
      'refusing entry "*" in ALLOWED_POLICY_VERSIONS in production: a wildcard admits every version; production admits only what is listed: exact versions (1.0.0), per-policy versions (pb-pay-v1@1.1.0) or ranges of full versions (^1.2.0, ~1.4.0, >=1.0.0 <2.0.0)',
    ]);
    assert.match(problems({ ...prod, ALLOWED_POLICY_VERSIONS: '>=0.0.0' })[0] ?? '', /: it admits every version;/);
    // Two bad entries: two lines.
    assert.equal(problems({ ...prod, ALLOWED_POLICY_VERSIONS: '1.0.0,*,1.x' }).length, 2);
    for (const good of ['1.0.0,1.1.0', 'pb-pay-v1@1.1.0', '^1.2.0', '~1.4.0', '>=1.0.0 <2.0.0', '1.0.0 - 1.9.9']) {
      assert.ok(resolveConfig({ ...prod, ALLOWED_POLICY_VERSIONS: good }).config.allowList, good);
    }
    // Outside production an explicit wildcard means what it says.
    assert.ok(resolveConfig({ ALLOWED_POLICY_VERSIONS: '*' }).config.allowList?.admits('pb-pay-v1', '9.9.9'));
  });
});
