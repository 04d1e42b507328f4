// `apx verify-blob` as cosign users call it, through the built CLI: keyless bundles (Fulcio
// certificate, Rekor entry, RFC 3161 timestamp) made offline by @sigstore/mock's services,
// keyed bundles, by file and by sha256:<hex> digest, with cosign's identity flags.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindingStatement } from '@apx/core';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '@apx/core/testing/keyless-fixtures';
import { apx, ok, REPO, scratchDir } from './harness.js';

const blob = Buffer.from('\0asm\x01\0\0\0 a policy artifact');
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

function refused(r: { status: number | null; stderr: string }, status: number, message: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  assert.doesNotMatch(r.stderr, /Verified OK/);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, message);
}

describe('apx verify-blob speaks cosign', () => {
  const dir = scratchDir('apx-verify-blob-');
  let svc: KeylessServices;
  const identity = ['--certificate-identity', DEFAULT_SUBJECT, '--certificate-oidc-issuer', DEFAULT_ISSUER];
  const verify = (args: string[], target = 'blob.wasm') => apx(dir, ['verify-blob', ...args, target]);

  before(async () => {
    svc = await startKeylessServices();
    writeFileSync(join(dir, 'blob.wasm'), blob);
    writeFileSync(join(dir, 'other.wasm'), Buffer.from('other bytes'));
    writeFileSync(join(dir, 'trusted_root.json'), JSON.stringify(trustedRootJson(svc)));
    const claims = {
      repository: 'acme/policies',
      repository_id: '4242',
      ref: 'refs/tags/v1.0.0',
      sha: 'abc123',
      event_name: 'push',
    };
    writeFileSync(join(dir, 'keyless.sigstore.json'), await svc.sign(blob, { claims }));
    writeFileSync(join(dir, 'keyless-dsse.sigstore.json'), await svc.sign(blob, { kind: 'dsse', claims }));
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'key.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'keyed.sigstore.json'), await svc.signWithKey(blob, privateKey));
    writeFileSync(join(dir, 'keyless-rekor2.sigstore.json'), await svc.sign(blob, { rekorV2: true }));
    writeFileSync(join(dir, 'keyed-rekor2.sigstore.json'), await svc.signWithKey(blob, privateKey, { rekorV2: true }));
  });
  after(async () => svc?.close());

  it('verifies a keyless bundle with cosign flags, by file and by sha256: digest, message and DSSE', () => {
    const root = ['--trusted-root', 'trusted_root.json'];
    for (const bundle of ['keyless.sigstore.json', 'keyless-dsse.sigstore.json', 'keyless-rekor2.sigstore.json']) {
      for (const target of ['blob.wasm', digest]) {
        const r = ok(verify(['--bundle', bundle, ...identity, ...root], target));
        assert.equal(r.stderr, 'Verified OK\n');
      }
    }
    ok(
      verify([
        '--bundle',
        'keyless.sigstore.json',
        '--certificate-identity-regexp',
        '^https://github\\.com/acme/policies/.*$',
        '--certificate-oidc-issuer-regexp',
        '^https://issuer\\.example$',
        '--certificate-github-workflow-repository',
        'acme/policies',
        '--certificate-github-workflow-ref',
        'refs/tags/v1.0.0',
        '--certificate-github-workflow-sha',
        'abc123',
        '--certificate-github-workflow-trigger',
        'push',
        '--certificate-github-repository-id',
        '4242',
        ...root,
      ]),
    );
  });

  it('verifies a keyed bundle logged to Rekor v2 (checkpoint and TSA time), by file and by digest', () => {
    for (const target of ['blob.wasm', digest]) {
      const r = ok(
        verify(['--bundle', 'keyed-rekor2.sigstore.json', '--key', 'key.pub', '--trusted-root', 'trusted_root.json'], target),
      );
      assert.equal(r.stderr, 'Verified OK\n');
    }
    refused(
      verify(['--bundle', 'keyed-rekor2.sigstore.json', '--key', 'key.pub', '--trusted-root', 'trusted_root.json'], 'other.wasm'),
      1,
      /^ERROR: /,
    );
  });

  it('refuses keyless verification with one clear line per reason', () => {
    const root = ['--trusted-root', 'trusted_root.json'];
    refused(
      verify(['--bundle', 'keyless.sigstore.json', '--certificate-oidc-issuer', DEFAULT_ISSUER]),
      1,
      /^ERROR: --certificate-identity or --certificate-identity-regexp is required for keyless verification/,
    );
    refused(
      verify(['--bundle', 'keyless.sigstore.json', '--certificate-identity', DEFAULT_SUBJECT]),
      1,
      /^ERROR: --certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required/,
    );
    refused(
      verify([
        '--bundle',
        'keyless.sigstore.json',
        '--certificate-identity-regexp',
        'acme',
        '--certificate-oidc-issuer',
        DEFAULT_ISSUER,
      ]),
      1,
      /^ERROR: invalid identity policy from the command line: the subject pattern "acme" is not anchored/,
    );
    refused(
      verify([
        '--bundle',
        'keyless.sigstore.json',
        '--certificate-identity',
        'https://github.com/mallory/x',
        '--certificate-oidc-issuer',
        DEFAULT_ISSUER,
        ...root,
      ]),
      1,
      /^ERROR: certificate identity mismatch: /,
    );
    refused(
      verify([
        '--bundle',
        'keyless.sigstore.json',
        '--certificate-identity',
        DEFAULT_SUBJECT,
        '--certificate-oidc-issuer',
        'https://accounts.google.com',
        ...root,
      ]),
      1,
      /^ERROR: certificate issuer mismatch: /,
    );
    refused(
      verify([
        '--bundle',
        'keyless.sigstore.json',
        ...identity,
        '--certificate-github-workflow-repository',
        'mallory/policies',
        ...root,
      ]),
      1,
      /^ERROR: certificate extension mismatch: githubWorkflowRepository is acme\/policies, expected mallory\/policies/,
    );
    refused(
      verify(['--bundle', 'keyless.sigstore.json', ...identity, ...root], 'other.wasm'),
      1,
      /^ERROR: bundle digest does not match the artifact/,
    );
    refused(
      verify(['--bundle', 'keyless.sigstore.json', ...identity, ...root], `sha256:${'0'.repeat(64)}`),
      1,
      /^ERROR: bundle digest does not match the artifact/,
    );
    // Without --trusted-root, the public-good root: the local services are not trusted there.
    refused(
      verify(['--bundle', 'keyless.sigstore.json', ...identity]),
      1,
      /^ERROR: (timestamp invalid|certificate chain untrusted|transparency log entry invalid)/,
    );
    refused(
      verify(['--bundle', 'keyed.sigstore.json', ...identity, ...root]),
      1,
      /^ERROR: this bundle is signed with a key, not a certificate: verify it with --key/,
    );
    // cosign's pre-v3 bundle format is named as such, not as a key-signed bundle.
    writeFileSync(join(dir, 'legacy.json'), JSON.stringify({ base64Signature: Buffer.from('sig').toString('base64') }));
    refused(
      verify(['--bundle', 'legacy.json', ...identity, ...root]),
      1,
      /^ERROR: this is a legacy cosign bundle \(\{"base64Signature": \.\.\.\}\): keyless verification needs a Sigstore bundle v0\.1-v0\.3/,
    );
  });

  it('verifies a keyed bundle with --key, by file and digest, its log entry and timestamp against --trusted-root', () => {
    for (const target of ['blob.wasm', digest]) {
      // As cosign: the log entry a bundle carries is checked, by default against the embedded
      // public-good root, which does not know these local services...
      refused(
        verify(['--key', 'key.pub', '--bundle', 'keyed.sigstore.json'], target),
        1,
        /^ERROR: (timestamp|transparency log entry) invalid: .*check that the trusted root is the one of the Sigstore instance/,
      );
      // ...unless --insecure-ignore-tlog: then the key alone, and a warning.
      const offline = ok(verify(['--key', 'key.pub', '--bundle', 'keyed.sigstore.json', '--insecure-ignore-tlog'], target));
      assert.match(offline.stderr, /WARNING: 1 transparency-log entry not checked \(--insecure-ignore-tlog\)/);
      assert.match(offline.stderr, /Verified OK\n$/);
      const r = ok(
        verify(['--key', 'key.pub', '--bundle', 'keyed.sigstore.json', '--trusted-root', 'trusted_root.json'], target),
      );
      assert.equal(r.stderr, 'Verified OK\n');
    }
    refused(
      verify(['--key', 'key.pub', '--bundle', 'keyed.sigstore.json', '--insecure-ignore-tlog'], 'other.wasm'),
      1,
      /^ERROR: bundle digest does not match/,
    );
    // A key and an identity to check together: the identity could not be checked, refused.
    refused(
      verify(['--key', 'key.pub', '--bundle', 'keyed.sigstore.json', '--trusted-root', 'trusted_root.json', ...identity]),
      1,
      /^ERROR: pass either --key \(a key-signed bundle\) or the --certificate-\* identity flags \(a keyless bundle\), not both/,
    );
  });

  it('verifies apx sign-blob output by sha256: digest, with --signature and --bundle', () => {
    ok(apx(dir, ['generate-key-pair']));
    ok(apx(dir, ['sign-blob', '--output-signature', 'blob.wasm.sig', '--bundle', 'blob.wasm.sigstore.json', 'blob.wasm']));
    ok(verify(['--key', 'keys/cosign.pub', '--signature', 'blob.wasm.sig'], digest));
    ok(verify(['--key', 'keys/cosign.pub', '--bundle', 'blob.wasm.sigstore.json'], digest));
    refused(
      verify(['--key', 'keys/cosign.pub', '--signature', 'blob.wasm.sig'], `sha256:${'1'.repeat(64)}`),
      1,
      /^ERROR: signature verification failed: ECDSA signature verification failed/,
    );
    refused(
      verify(['--key', 'keys/cosign.pub', '--signature', 'blob.wasm.sig'], 'sha256:abc'),
      1,
      /^ERROR: sha256:abc is not a sha256 digest/,
    );
  });
});

describe('apx trust signer with cosign identity flags', () => {
  it("adds and removes a keyless identity in the environment's apx.signers; an unanchored one is refused", () => {
    const dir = scratchDir('apx-trust-identity-');
    for (const k of ['root', 'targets', 'snapshot', 'timestamp', 'approver']) {
      ok(apx(dir, ['generate-key-pair', '--output-key-prefix', `keys/${k}`]));
    }
    const store = ['--store', 'store'];
    ok(
      apx(dir, [
        'trust',
        'init',
        ...store,
        ...['--root-key', 'keys/root.key', '--targets-key', 'keys/targets.key'],
        ...['--snapshot-key', 'keys/snapshot.key', '--timestamp-key', 'keys/timestamp.key'],
        ...['--approver', 'dev=keys/approver.pub', '--approver', 'staging=keys/approver.pub'],
        ...['--approver', 'production=keys/approver.pub', '--key', 'keys/approver.key'],
      ]),
    );
    const keys = ['--key', 'keys/approver.key', '--key', 'keys/snapshot.key', '--key', 'keys/timestamp.key'];
    const identity = [
      '--certificate-identity-regexp',
      '^https://github\\.com/acme/policies/\\.github/workflows/release\\.yml@refs/tags/v.*$',
      '--certificate-oidc-issuer',
      'https://token.actions.githubusercontent.com',
      '--certificate-github-repository-id',
      '4242',
    ];
    const added = ok(apx(dir, ['trust', 'signer', 'add', '--env', 'production', ...identity, ...store, ...keys]));
    assert.match(added.stdout + added.stderr, /production trusts keyless identity \/\^https:\/\/github/);
    const role = () => {
      const files = readdirSync(join(dir, 'store', 'tuf')).filter((f) => f.endsWith('.production.json'));
      const latest = files.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10)).at(-1) as string;
      return JSON.parse(readFileSync(join(dir, 'store', 'tuf', latest), 'utf8')).signed.apx.signers as unknown[];
    };
    assert.deepEqual(role(), [
      {
        identity: {
          issuer: 'https://token.actions.githubusercontent.com',
          subjectRegExp: '^https://github\\.com/acme/policies/\\.github/workflows/release\\.yml@refs/tags/v.*$',
          githubRepositoryId: '4242',
        },
      },
    ]);
    refused(
      apx(dir, [
        'trust',
        'signer',
        'add',
        '--env',
        'production',
        '--certificate-identity-regexp',
        'acme',
        '--certificate-oidc-issuer',
        'x',
        ...store,
        ...keys,
      ]),
      1,
      /^ERROR: invalid identity policy from the command line: the subject pattern "acme" is not anchored/,
    );
    // trust status names the identity, in text and in JSON.
    const status = ok(apx(dir, ['trust', 'status', '--env', 'production', ...store]));
    assert.match(
      status.stdout,
      /artifact signers: identity \/\^https:\/\/github.*\/ from https:\/\/token\.actions\.githubusercontent\.com \(githubRepositoryId=4242\)/,
    );
    const statusJson = JSON.parse(ok(apx(dir, ['trust', 'status', '--env', 'production', '--json', ...store])).stdout);
    assert.equal(statusJson.environments[0].identities[0].identity.githubRepositoryId, '4242');
    ok(apx(dir, ['trust', 'signer', 'remove', '--env', 'production', ...identity, ...store, ...keys]));
    assert.deepEqual(role(), []);
    // Retiring a key ends its validity window (judged by workers at a trusted time).
    ok(apx(dir, ['trust', 'signer', 'add', '--env', 'production', 'keys/root.pub', ...store, ...keys]));
    const retired = ok(
      apx(dir, [
        'trust',
        'signer',
        'retire',
        '--env',
        'production',
        'keys/root.pub',
        '--at',
        '2026-06-01T00:00:00Z',
        ...store,
        ...keys,
      ]),
    );
    assert.match(retired.stdout + retired.stderr, /for signatures made until 2026-06-01T00:00:00\.000Z/);
    assert.equal((role()[0] as { notAfter?: string }).notAfter, '2026-06-01T00:00:00.000Z');
    const afterRetire = ok(apx(dir, ['trust', 'status', '--env', 'production', ...store]));
    assert.match(afterRetire.stdout, /artifact signers: [0-9a-f]{64} \(retired 2026-06-01T00:00:00\.000Z\)/);
    const retiredJson = JSON.parse(ok(apx(dir, ['trust', 'status', '--env', 'production', '--json', ...store])).stdout);
    assert.equal(retiredJson.environments[0].signerKeys[0].notAfter, '2026-06-01T00:00:00.000Z');
    refused(
      apx(dir, ['trust', 'signer', 'retire', '--env', 'production', 'keys/root.pub', '--at', 'tomorrow', ...store, ...keys]),
      2,
      /^ERROR: --at tomorrow is not an RFC 3339 time/,
    );
  });
});

describe('apx verify with a keyless artifact', () => {
  it('would load for the identity named, against --sigstore-trusted-root; not for another', async () => {
    const dir = scratchDir('apx-verify-keyless-');
    const svc = await startKeylessServices();
    try {
      ok(apx(dir, ['generate-key-pair']));
      ok(apx(dir, ['compile', '--out', 'build', join(REPO, 'configs/samples/payments-api.yaml')]));
      const artifact = join(dir, 'build', 'pb-pay-v1@1.0.0.wasm');
      const bytes = readFileSync(artifact);
      const statement = bindingStatement(bytes, {
        policyId: 'pb-pay-v1',
        version: '1.0.0',
        environment: 'dev',
        size: bytes.byteLength,
        abiVersion: null,
        compilerVersion: null,
        sourceDigest: null,
        signedAt: new Date().toISOString(),
      });
      // The artifact signed keylessly: its bundle is the signature (no .sig).
      writeFileSync(`${artifact}.sigstore.json`, await svc.sign(bytes, { kind: 'dsse', statement }));
      rmSync(`${artifact}.sig`);
      writeFileSync(join(dir, 'trusted_root.json'), JSON.stringify(trustedRootJson(svc)));
      const common = ['verify', '--sigstore-trusted-root', 'trusted_root.json', '--certificate-oidc-issuer', DEFAULT_ISSUER];
      const r = ok(apx(dir, [...common, '--certificate-identity', DEFAULT_SUBJECT, artifact]));
      assert.match(
        r.stdout,
        new RegExp(`^✓ pb-pay-v1@1\\.0\\.0 would load in dev \\(identity ${DEFAULT_SUBJECT.replace(/[.]/g, '\\.')} from `),
      );
      refused(
        apx(dir, [...common, '--certificate-identity', 'https://github.com/mallory/x', artifact]),
        1,
        /^ERROR: certificate identity mismatch: /,
      );
      // Runbook mode without an identity: the key in force did not sign it.
      refused(
        apx(dir, ['verify', artifact]),
        1,
        /^ERROR: not approved: the artifact is signed keylessly and the trust in force names no trusted identity/,
      );
    } finally {
      await svc.close();
    }
  });
});
