// The trust repository end to end: real `apx trust` processes on a directory store, with
// throwaway keys (empty password): a ceremony with 2-of-3 production approvers, signers,
// approvals staged and completed by a second approver, refusals, revocation, root rotation,
// the freshness heartbeat, the old commands' aliases, and concurrent approvals.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apx, apxAsync, REPO, type Run } from './harness.js';

const EMPTY = { COSIGN_PASSWORD: '' };
const ONLINE = ['--key', 'keys/snapshot.key', '--key', 'keys/timestamp.key'];

function ok(r: Run): Run {
  assert.equal(r.status, 0, `apx failed: ${r.stderr}`);
  return r;
}

/** Every failure is one line, `ERROR: ...`, no stack trace, non-zero exit. */
function fails(r: Run, includes: string, status = 1): void {
  assert.equal(r.status, status, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.ok(lines[0]?.startsWith('ERROR: '), r.stderr);
  assert.ok(lines[0]?.includes(includes), `expected "${includes}" in: ${r.stderr}`);
}

interface Status {
  roles: Array<{ role: string; version: number; threshold: number; keyIds: string[]; signedBy: string[] }>;
  environments: Array<{
    role: string;
    version: number | null;
    threshold: number;
    approved: Array<{ path: string; sha256: string; length: number; approvedAt: string }>;
    signers: string[];
    revoked: Array<{ path: string; reason: string }>;
  }>;
  staged: Array<{ role: string; version: number; signatures: number; threshold: number; missing: string[]; stale: boolean }>;
}

describe('e2e: apx trust', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apx-trust-e2e-'));
  const run = (args: string[]) => apx(dir, args, EMPTY);
  const status = (): Status => JSON.parse(ok(run(['trust', 'status', '--json'])).stdout) as Status;
  const production = () => status().environments.find((e) => e.role === 'production');
  let artifactKeyId = '';

  /** Compiles the payments sample as VERSION for ENV into build/, signed with keys/cosign.key. */
  const compile = (version: string, env = 'production', key = 'keys/cosign.key'): string => {
    const source = readFileSync(join(REPO, 'configs/samples/payments-api.yaml'), 'utf8').replace(
      /version: 1\.0\.0/,
      `version: ${version}`,
    );
    writeFileSync(join(dir, `p-${version}.yaml`), source);
    const out = `build-${env}-${key.replace(/\W+/g, '-')}`;
    ok(run(['compile', '--env', env, '--key', key, '--out', out, `p-${version}.yaml`]));
    return `${out}/pb-pay-v1@${version}.wasm`;
  };

  before(() => {
    for (const k of [
      'root',
      'targets',
      'snapshot',
      'timestamp',
      'dev',
      'staging',
      'alice',
      'bob',
      'carol',
      'root2',
      'root3',
      'stranger',
    ]) {
      ok(run(['generate-key-pair', '--output-key-prefix', `keys/${k}`]));
    }
    const generated = ok(run(['generate-key-pair']));
    artifactKeyId = /Key id: ([0-9a-f]{64})/.exec(generated.stderr)?.[1] ?? '';
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('init: creates root, targets, snapshot, timestamp and the environments with 2-of-3 production approvers', () => {
    const r = ok(
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
        'dev=keys/dev.pub',
        '--approver',
        'staging=keys/staging.pub',
        '--approver',
        'production=keys/alice.pub',
        '--approver',
        'production=keys/bob.pub',
        '--approver',
        'production=keys/carol.pub',
        '--threshold',
        'production=2',
        '--expires',
        'timestamp=24h',
        // The approvers at the ceremony sign their environment's first version.
        '--key',
        'keys/dev.key',
        '--key',
        'keys/staging.key',
        '--key',
        'keys/alice.key',
        '--key',
        'keys/bob.key',
      ]),
    );
    assert.match(r.stderr, /^✓ Created the trust repository in \.\/artifacts \(tuf\/\)$/m);
    assert.match(
      r.stderr,
      /^ {2}production {2}2 of 3: [0-9a-f]{12} \(keys\/alice\.pub\), [0-9a-f]{12} \(keys\/bob\.pub\), [0-9a-f]{12} \(keys\/carol\.pub\)/m,
    );
    assert.match(r.stderr, /Environments dev, staging and production delegated to their approvers \(published\)/);
    assert.match(r.stderr, /APX_TRUST_ROOT/);
    assert.ok(existsSync(join(dir, 'artifacts/tuf/1.root.json')));
    assert.ok(existsSync(join(dir, 'artifacts/tuf/timestamp.json')));
    const s = status();
    assert.deepEqual(
      s.roles.map((r) => [r.role, r.threshold]),
      [
        ['root', 1],
        ['targets', 1],
        ['snapshot', 1],
        ['timestamp', 1],
      ],
    );
    assert.equal(production()?.threshold, 2);
    assert.equal(production()?.version, 1);
    // Never overwritten.
    fails(
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
        'dev=keys/dev.pub',
        '--approver',
        'staging=keys/staging.pub',
        '--approver',
        'production=keys/alice.pub',
      ]),
      'a trust repository already exists in ./artifacts',
    );
  });

  it('approve: refused while the environment trusts no artifact signing key', () => {
    const artifact = compile('1.1.0');
    fails(
      run(['trust', 'approve', artifact, '--env', 'production', '--key', 'keys/alice.key', '--key', 'keys/bob.key', ...ONLINE]),
      'refusing to approve pb-pay-v1@1.1.0 for production: production trusts no artifact signing key yet; add the key that signs its artifacts first: apx trust signer add',
    );
  });

  it('signer add: production (2 of 3) and dev trust the artifact key', () => {
    const r = ok(
      run([
        'trust',
        'signer',
        'add',
        '--env',
        'production',
        'keys/cosign.pub',
        '--key',
        'keys/alice.key',
        '--key',
        'keys/bob.key',
        ...ONLINE,
      ]),
    );
    assert.match(
      r.stderr,
      new RegExp(`^✓ production trusts artifact signing key ${artifactKeyId} \\(production version 2, published\\)$`, 'm'),
    );
    ok(run(['trust', 'signer', 'add', '--env', 'dev', 'keys/cosign.pub', '--key', 'keys/dev.key', ...ONLINE]));
    assert.deepEqual(production()?.signers, [artifactKeyId]);
  });

  it('approve with 2 of 3: one key stages, the same key again stays staged, a second key publishes', () => {
    const artifact = compile('1.1.0');
    const first = ok(run(['trust', 'approve', artifact, '--env', 'production', '--key', 'keys/alice.key', ...ONLINE]));
    assert.match(
      first.stderr,
      /^… approved pb-pay-v1@1\.1\.0 for production: staged: production version 3 has 1 of 2 signatures; missing key ids [0-9a-f]{12}, [0-9a-f]{12}; run apx trust sign --key/m,
    );
    assert.equal(production()?.approved.length, 0, 'a staged approval approves nothing');
    const again = ok(run(['trust', 'sign', '--key', 'keys/alice.key', ...ONLINE]));
    assert.match(again.stderr, /staged: production version 3 has 1 of 2 signatures/);
    const staged = status().staged.find((s) => s.role === 'production');
    assert.deepEqual([staged?.signatures, staged?.threshold, staged?.stale], [1, 2, false]);
    // The second approver runs the same approve command: it adds a signature to the staged approval.
    const second = ok(run(['trust', 'approve', artifact, '--env', 'production', '--key', 'keys/bob.key', ...ONLINE]));
    assert.match(second.stderr, /^✓ approved pb-pay-v1@1\.1\.0 for production \(production version 3, published\)$/m);
    const approved = production()?.approved ?? [];
    assert.deepEqual(
      approved.map((a) => a.path),
      ['pb-pay-v1@1.1.0.wasm'],
    );
    assert.match(approved[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(Date.parse(approved[0]?.approvedAt ?? '') > 0);
    assert.equal(status().staged.filter((s) => !s.stale).length, 0);
  });

  it('a dev approver key cannot approve for production; an artifact signed by an untrusted key is refused', () => {
    const artifact = compile('1.2.0');
    fails(
      run(['trust', 'approve', artifact, '--env', 'production', '--key', 'keys/dev.key', ...ONLINE]),
      'keys/dev.key is not a key of production',
    );
    const foreign = compile('1.2.0', 'production', 'keys/stranger.key');
    fails(
      run(['trust', 'approve', foreign, '--env', 'production', '--key', 'keys/alice.key', '--key', 'keys/bob.key', ...ONLINE]),
      'refusing to approve pb-pay-v1@1.2.0 for production: signature verification failed: ECDSA signature verification failed',
    );
    // A dev build has no production binding: workers in production would refuse it.
    const devBuild = compile('1.2.0', 'dev');
    fails(
      run(['trust', 'approve', devBuild, '--env', 'production', '--key', 'keys/alice.key', '--key', 'keys/bob.key', ...ONLINE]),
      'refusing to approve pb-pay-v1@1.2.0 for production: signed binding',
    );
    assert.equal(production()?.approved.length, 1);
  });

  it('approve by reference reads the artifact from the store', () => {
    const artifact = compile('1.4.0');
    ok(run(['publish', artifact]));
    const r = ok(
      run([
        'trust',
        'approve',
        'pb-pay-v1@1.4.0',
        '--env',
        'production',
        '--key',
        'keys/alice.key',
        '--key',
        'keys/carol.key',
        ...ONLINE,
        '--json',
      ]),
    );
    const result = JSON.parse(r.stdout) as { outcome: string; reference: string; roles: Record<string, number> };
    assert.equal(result.outcome, 'published');
    assert.equal(result.reference, 'pb-pay-v1@1.4.0');
    fails(
      run(['trust', 'approve', 'pb-pay-v1@9.9.9', '--env', 'production', '--key', 'keys/alice.key', ...ONLINE]),
      'artifact not found: pb-pay-v1@9.9.9 is not in',
    );
  });

  it('revoke: the approval goes, the reason stays; revoking it again says it is not approved', () => {
    const r = ok(
      run([
        'trust',
        'revoke',
        'pb-pay-v1@1.4.0',
        '--env',
        'production',
        '--reason',
        'leaked rule',
        '--key',
        'keys/bob.key',
        '--key',
        'keys/carol.key',
        ...ONLINE,
      ]),
    );
    assert.match(r.stderr, /^✓ revoked pb-pay-v1@1\.4\.0 in production \(production version \d+, published\)$/m);
    const env = production();
    assert.deepEqual(
      env?.approved.map((a) => a.path),
      ['pb-pay-v1@1.1.0.wasm'],
    );
    assert.deepEqual(
      env?.revoked.map((x) => [x.path, x.reason]),
      [['pb-pay-v1@1.4.0.wasm', 'leaked rule']],
    );
    fails(
      run([
        'trust',
        'revoke',
        'pb-pay-v1@1.4.0',
        '--env',
        'production',
        '--reason',
        'again',
        '--key',
        'keys/bob.key',
        '--key',
        'keys/carol.key',
        ...ONLINE,
      ]),
      'pb-pay-v1@1.4.0 is not approved in production',
    );
    const audit = readFileSync(join(dir, 'keys/audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = audit.filter((a) => a.operation === 'trust revoke').at(-1);
    assert.equal(last?.environment, 'production');
    assert.equal(last?.reference, 'pb-pay-v1@1.4.0');
    assert.equal(last?.reason, 'leaked rule');
    assert.equal(last?.outcome, 'published');
    assert.equal((last?.key_ids as string[] | undefined)?.length, 4);
    assert.ok(audit.some((a) => a.operation === 'trust approve' && a.outcome === 'staged'));
  });

  it('signer remove: by key id prefix', () => {
    const r = ok(
      run(['trust', 'signer', 'remove', '--env', 'dev', artifactKeyId.slice(0, 12), '--key', 'keys/dev.key', ...ONLINE]),
    );
    assert.match(r.stderr, /^✓ dev no longer trusts artifact signing key/m);
    assert.deepEqual(status().environments.find((e) => e.role === 'dev')?.signers, []);
    fails(
      run(['trust', 'signer', 'remove', '--env', 'dev', 'keys/cosign.pub', '--key', 'keys/dev.key', ...ONLINE]),
      'does not sign for dev',
    );
  });

  it('the heartbeat renews snapshot and timestamp while an approval waits staged', () => {
    const artifact = compile('1.5.0');
    ok(run(['trust', 'approve', artifact, '--env', 'production', '--key', 'keys/carol.key', ...ONLINE]));
    const before = status().roles.find((r) => r.role === 'timestamp')?.version ?? 0;
    const r = ok(run(['trust', 'publish', ...ONLINE, '--expires', 'timestamp=24h']));
    assert.match(
      r.stderr,
      /^✓ renewed snapshot and timestamp; timestamp expires \S+ \(snapshot version \d+, timestamp version \d+, published\)$/m,
    );
    assert.match(r.stderr, /still staged, waiting for signatures: production version \d+/);
    const s = status();
    assert.equal(s.roles.find((x) => x.role === 'timestamp')?.version, before + 1);
    assert.equal(s.staged.filter((x) => !x.stale && x.role === 'production').length, 1);
    // apx index is apx trust publish on a store with a trust repository (--expires 12h: the timestamp).
    const idx = ok(run(['index', ...ONLINE, '--expires', '12h']));
    assert.match(idx.stderr, /renewed snapshot and timestamp/);
    fails(run(['trust', 'publish', '--key', 'keys/snapshot.key']), 'timestamp needs 1 signature(s), has 0');
    // Complete it: published with the next approval.
    ok(run(['trust', 'sign', '--key', 'keys/alice.key', ...ONLINE]));
    assert.ok(production()?.approved.some((a) => a.path === 'pb-pay-v1@1.5.0.wasm'));
  });

  it('root rotation: needs a threshold of the old and of the new root keys', () => {
    const r = ok(
      run([
        'trust',
        'rotate',
        'root',
        '--new-key',
        'keys/root2.pub',
        '--new-key',
        'keys/root3.pub',
        '--threshold',
        '2',
        '--key',
        'keys/root.key',
        ...ONLINE,
      ]),
    );
    assert.match(
      r.stderr,
      /^… rotated root to 2 of 2 key\(s\) [0-9a-f]{12}, [0-9a-f]{12}: staged: root version 2 has 0 of 2 signatures/m,
    );
    assert.match(
      ok(run(['trust', 'sign', '--key', 'keys/root2.key', ...ONLINE])).stderr,
      /staged: root version 2 has 1 of 2 signatures/,
    );
    assert.match(
      ok(run(['trust', 'sign', '--key', 'keys/root3.key', ...ONLINE])).stderr,
      /^✓ signed the staged changes \(root version 2, published\)$/m,
    );
    assert.ok(existsSync(join(dir, 'artifacts/tuf/2.root.json')));
    const root = status().roles.find((x) => x.role === 'root');
    assert.deepEqual([root?.version, root?.threshold, root?.keyIds.length, root?.signedBy.length], [2, 2, 2, 3]);
    // The old root key is no root key any more.
    fails(run(['trust', 'renew', 'root', '--key', 'keys/root.key', ...ONLINE]), 'keys/root.key is not a key of root');
  });

  it('status: roles, approvals, signers, revocations in human form', () => {
    const r = ok(run(['trust', 'status', '--env', 'production']));
    assert.match(r.stdout, /^Trust repository in \.\/artifacts$/m);
    assert.match(r.stdout, /^ {2}root {7}version 2, expires \S+ \(in \d+d\); 2 of 2 keys/m);
    assert.match(r.stdout, /^production version \d+, expires \S+ \(in \d+d\); 2 of 3 keys/m);
    assert.match(r.stdout, new RegExp(`^ {2}artifact signers: ${artifactKeyId}$`, 'm'));
    assert.match(r.stdout, /^ {4}pb-pay-v1@1\.1\.0\.wasm {2}sha256:[0-9a-f]{64} {2}\d+ bytes {2}approved \S+$/m);
    assert.match(r.stdout, /^ {4}pb-pay-v1@1\.4\.0\.wasm {2}sha256:[0-9a-f]{64} {2}revoked \S+: leaked rule$/m);
    assert.doesNotMatch(r.stdout, /^dev /m);
  });

  it('old commands: apx revoke --env is apx trust revoke; its removed forms say what replaces them', () => {
    const r = ok(
      run([
        'revoke',
        'pb-pay-v1@1.5.0',
        '--env',
        'production',
        '--reason',
        'superseded',
        '--key',
        'keys/alice.key',
        '--key',
        'keys/bob.key',
        ...ONLINE,
      ]),
    );
    assert.match(r.stderr, /^✓ revoked pb-pay-v1@1\.5\.0 in production/m);
    fails(
      run(['revoke', 'pb-pay-v1@1.1.0', '--reason', 'x', '--key', 'keys/alice.key']),
      '--env is required: apx revoke is apx trust revoke REF --env ENV',
      2,
    );
    fails(
      run(['revoke', 'pb-pay-v1@1.1.0', '--env', 'production', '--reason', 'x', '--list', 'rev.json', '--key', 'keys/alice.key']),
      '--list: the revocation list file is gone',
      2,
    );
    fails(run(['revoke', artifactKeyId, '--reason', 'x']), 'revoking a key is now: apx trust signer remove --env ENV', 2);
  });

  it('usage errors are one line with exit 2', () => {
    fails(
      run(['trust', 'approve', 'x.wasm', '--env', 'prod', '--key', 'keys/alice.key']),
      '--env prod is not one of dev, staging, production',
      2,
    );
    fails(
      run(['trust', 'publish', ...ONLINE, '--expires', 'timestamp=1y']),
      '--expires timestamp=1y is not a duration like 30m, 24h, 7d or 90d',
      2,
    );
    fails(run(['trust', 'approve', 'x.wasm', '--env', 'production']), '--key is required', 2);
    fails(run(['trust', 'frobnicate']), 'unknown subcommand trust frobnicate', 2);
    assert.match(ok(run(['trust', 'rotate', '--help'])).stdout, /^Usage: apx trust rotate ROLE --new-key REF\.\.\./);
  });

  it('concurrent approvals of different artifacts from separate processes: each is applied or reports a conflict, none is lost', async () => {
    const versions = ['2.0.0', '2.1.0', '2.2.0'];
    const artifacts = versions.map((v) => compile(v));
    const runs = await Promise.all(
      artifacts.map((a) =>
        apxAsync(
          dir,
          ['trust', 'approve', a, '--env', 'production', '--key', 'keys/alice.key', '--key', 'keys/bob.key', ...ONLINE],
          EMPTY,
        ),
      ),
    );
    const approved = new Set(production()?.approved.map((a) => a.path));
    runs.forEach((r, i) => {
      const path = `pb-pay-v1@${versions[i]}.wasm`;
      if (r.status === 0) {
        assert.match(r.stderr, /✓ approved .* published\)$/m);
        assert.ok(approved.has(path), `${path} reported approved but is not in force: ${r.stderr}`);
      } else {
        assert.equal(r.status, 1, r.stderr);
        assert.match(
          r.stderr.trimEnd().split('\n').at(-1) ?? '',
          /^ERROR: conflict: the trust repository in \.\/artifacts changed since it was read/,
        );
        assert.ok(!approved.has(path));
      }
    });
    assert.ok(runs.some((r) => r.status === 0));
  });
});
