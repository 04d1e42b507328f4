// Keys that never leave a KMS, through the CLI: Vault transit (hashivault://), AWS KMS
// (awskms://) and Cloud KMS (gcpkms://) through the official clients, each against a local
// server speaking its wire protocol; and a worker that trusts the KMS key itself.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { FakeGcpKms } from '@apx/kms/testing/gcp-kms-fake';
import { FakeAwsKms, FakeVault } from '@apx/kms/testing/kms-fakes';
import { apxAsync, ok, PAYMENTS_GET, WorkerProcess, Workspace } from './harness.js';

describe('e2e: KMS-held keys', () => {
  let vault: FakeVault;
  let kms: FakeAwsKms;
  let ws: Workspace;
  let env: Record<string, string>;

  before(async () => {
    vault = await FakeVault.start();
    kms = await FakeAwsKms.start();
    kms.addKey('1234abcd-12ab-34cd-56ef-1234567890ab', 'apx-signing');
    ws = new Workspace();
    env = {
      VAULT_ADDR: vault.address,
      VAULT_TOKEN: vault.token,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
    };
  });
  after(async () => {
    await vault.close();
    await kms.close();
  });

  it('creates a Vault transit key, signs with it, and verifies with the public key it wrote', async () => {
    const created = ok(
      await apxAsync(ws.dir, ['generate-key-pair', '--kms', 'hashivault://apx-signing', '--output-key-prefix', 'vault'], env),
    );
    assert.match(created.stderr, /Created hashivault:\/\/apx-signing; public key written to vault\.pub/);
    const artifact = ws.compilePayments();
    ok(await apxAsync(ws.dir, ['sign-blob', '--key', 'hashivault://apx-signing', '--output-signature', 'v.sig', artifact], env));
    const verified = ok(await apxAsync(ws.dir, ['verify-blob', '--key', 'vault.pub', '--signature', 'v.sig', artifact], env));
    assert.match(verified.stderr, /Verified OK/);
    const pub = ok(await apxAsync(ws.dir, ['public-key', '--key', 'hashivault://apx-signing'], env));
    assert.equal(pub.stdout, readFileSync(ws.path('vault.pub'), 'utf8'));
    const audit = readFileSync(ws.path('keys/audit.log'), 'utf8');
    assert.match(audit, /"key_ref":"hashivault:\/\/apx-signing"/);
    assert.doesNotMatch(audit, new RegExp(vault.token));
  });

  it('compiles and signs with an AWS KMS key through the official SDK', async () => {
    const keyRef = `awskms://${kms.endpoint}/alias/apx-signing`;
    const source = ws.path('payments-1.0.0.yaml');
    ok(await apxAsync(ws.dir, ['compile', '--out', 'kms-build', '--key', keyRef, source], env));
    ok(await apxAsync(ws.dir, ['public-key', '--key', keyRef, '--outfile', 'aws.pub'], env));
    const artifact = ws.path('kms-build', 'pb-pay-v1@1.0.0.wasm');
    const v = ok(
      await apxAsync(
        ws.dir,
        ['verify-blob', '--key', 'aws.pub', '--signature', `${artifact}.sig`, '--bundle', `${artifact}.sigstore.json`, artifact],
        env,
      ),
    );
    assert.match(v.stderr, /Verified OK/);
  });

  it("signs with a Google Cloud KMS key over gRPC (official client), the runbook's production set-up", async () => {
    const gcp = await FakeGcpKms.start();
    const key = 'projects/apx-prod/locations/us-central1/keyRings/apx-signing/cryptoKeys/artifact-signing';
    gcp.addVersion(key);
    try {
      const gcpEnv = { ...env, APX_GCPKMS_ENDPOINT: `127.0.0.1:${gcp.port}` };
      const file = ws.path('payments-1.0.0.yaml');
      ok(await apxAsync(ws.dir, ['sign-blob', '--key', `gcpkms://${key}`, '--output-signature', 'g.sig', file], gcpEnv));
      ok(await apxAsync(ws.dir, ['public-key', '--key', `gcpkms://${key}`, '--outfile', 'g.pub'], gcpEnv));
      ok(await apxAsync(ws.dir, ['verify-blob', '--key', 'g.pub', '--signature', 'g.sig', file], gcpEnv));
      gcp.denied.add(key);
      const r = await apxAsync(ws.dir, ['sign-blob', '--key', `gcpkms://${key}`, file], gcpEnv);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^ERROR: gcpkms:\/\/projects\/apx-prod\/.*: rpc error: code = PermissionDenied desc = /);
    } finally {
      gcp.stop();
    }
  });

  it('creates keys in AWS KMS (by alias) and Cloud KMS, and refuses to create one that exists', async () => {
    const gcp = await FakeGcpKms.start();
    try {
      const gcpEnv = { ...env, APX_GCPKMS_ENDPOINT: `127.0.0.1:${gcp.port}` };
      const aws = `awskms://${kms.endpoint}/alias/apx-created`;
      const created = ok(await apxAsync(ws.dir, ['generate-key-pair', '--kms', aws, '--output-key-prefix', 'aws-created'], env));
      assert.match(created.stderr, /Created awskms:\/\/.*\/alias\/apx-created; public key written to aws-created\.pub/);
      const pub = ok(await apxAsync(ws.dir, ['public-key', '--key', aws], env));
      assert.equal(pub.stdout, readFileSync(ws.path('aws-created.pub'), 'utf8'));
      const again = await apxAsync(ws.dir, ['generate-key-pair', '--kms', aws, '--output-key-prefix', 'aws-again'], env);
      assert.equal(again.status, 1);
      assert.match(again.stderr, /^ERROR: awskms:\/\/.*: alias\/apx-created already names a key in AWS KMS;/);
      const byId = await apxAsync(
        ws.dir,
        ['generate-key-pair', '--kms', `awskms://${kms.endpoint}/1234abcd-12ab-34cd-56ef-1234567890ab`],
        env,
      );
      assert.match(byId.stderr, /AWS chooses key ids; name the new key by an alias/);

      const key = 'projects/apx-prod/locations/global/keyRings/new-ring/cryptoKeys/artifact-signing';
      ok(await apxAsync(ws.dir, ['generate-key-pair', '--kms', `gcpkms://${key}`, '--output-key-prefix', 'gcp-created'], gcpEnv));
      const file = ws.path('payments-1.0.0.yaml');
      ok(await apxAsync(ws.dir, ['sign-blob', '--key', `gcpkms://${key}`, '--output-signature', 'c.sig', file], gcpEnv));
      ok(await apxAsync(ws.dir, ['verify-blob', '--key', 'gcp-created.pub', '--signature', 'c.sig', file], gcpEnv));
      const exists = await apxAsync(
        ws.dir,
        ['generate-key-pair', '--kms', `gcpkms://${key}`, '--output-key-prefix', 'x'],
        gcpEnv,
      );
      assert.equal(exists.status, 1);
      assert.match(exists.stderr, /rpc error: code = AlreadyExists desc = CryptoKey .* already exists/);
    } finally {
      gcp.stop();
    }
  });

  it('creates the next Cloud KMS key, and a worker trusting that KMS key loads what it signed', async () => {
    const gcp = await FakeGcpKms.start();
    try {
      const gcpEnv = { ...env, APX_GCPKMS_ENDPOINT: `127.0.0.1:${gcp.port}` };
      const current = 'projects/apx-prod/locations/global/keyRings/apx/cryptoKeys/signing-2025';
      const next = 'projects/apx-prod/locations/global/keyRings/apx/cryptoKeys/signing-2026';
      gcp.addVersion(current);
      ok(await apxAsync(ws.dir, ['public-key', '--key', `gcpkms://${current}`, '--outfile', 'current.pub'], gcpEnv));
      // The next key is created in the KMS; trusting it is then one signer change in the trust
      // repository (apx trust signer add, see trust e2e) or, in runbook mode, APX_PUBLIC_KEY.
      const created = ok(
        await apxAsync(ws.dir, ['generate-key-pair', '--kms', `gcpkms://${next}`, '--output-key-prefix', 'next'], gcpEnv),
      );
      assert.match(created.stderr, /signing-2026/);

      const source = ws.path('payments-1.0.0.yaml');
      ok(await apxAsync(ws.dir, ['compile', '--out', 'kms-store', '--key', `gcpkms://${next}`, source], gcpEnv));
      const worker = await WorkerProcess.start(ws.dir, {
        ...gcpEnv,
        APX_STORE: ws.path('kms-store'),
        APX_PUBLIC_KEY: `gcpkms://${next}`,
      });
      try {
        await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
        const keyLine = worker.logs.find((l) => l.message.startsWith('trusted public key loaded from '));
        assert.equal(keyLine?.message, `trusted public key loaded from ${next}/cryptoKeyVersions/1`);
        assert.equal((await worker.decide('pb-pay-v1', PAYMENTS_GET)).body.allow, true);
      } finally {
        await worker.stop();
      }
    } finally {
      gcp.stop();
    }
  });

  it('says what is wrong with a KMS reference in one line', async () => {
    const r = await apxAsync(ws.dir, ['sign-blob', '--key', 'hashivault://nope', ws.path('payments-1.0.0.yaml')], env);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^ERROR: hashivault:\/\/nope: Vault answered 404: key not found: nope;/);
    const unset = await apxAsync(ws.dir, ['sign-blob', '--key', 'hashivault://x', ws.path('payments-1.0.0.yaml')], {});
    assert.match(unset.stderr, /VAULT_ADDR and VAULT_TOKEN must be set/);
  });
});
