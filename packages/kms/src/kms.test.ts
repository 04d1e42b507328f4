import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setEnv } from '@apx/core/testing/hygiene';
import { AwsKmsKey } from './aws.js';
import { GcpKmsKey } from './gcp.js';
import { parseKeyRef } from './key-ref.js';
import { vaultOptions } from './open.js';
import { FakeGcpKms } from './testing/gcp-kms-fake.js';
import { FakeAwsKms, FakeVault } from './testing/kms-fakes.js';
import { VaultKey } from './vault.js';

describe('KMS signers: failures', () => {
  it('refuses a VAULT_ADDR that carries a secret, without repeating it', () => {
    for (const address of [
      'https://user:s3cret@vault.example.com',
      'https://vault.example.com/?token=s3cret',
      'vault.example.com',
    ]) {
      assert.throws(
        () => vaultOptions({ VAULT_ADDR: address, VAULT_TOKEN: 't' }, 'hashivault://k'),
        (err: Error) => /VAULT_ADDR must be a plain http\(s\) address/.test(err.message) && !err.message.includes('s3cret'),
      );
    }
    assert.equal(
      vaultOptions({ VAULT_ADDR: 'https://vault.example.com:8200', VAULT_TOKEN: 't' }, 'k').address,
      'https://vault.example.com:8200',
    );
  });

  it('names Vault refusals (token, key) in one line', async () => {
    const vault = await FakeVault.start();
    try {
      await assert.rejects(VaultKey.open('missing', { address: vault.address, token: vault.token }), {
        code: 'KMS_FAILED',
        message: 'hashivault://missing: Vault answered 404: key not found: missing',
      });
      vault.addKey('k');
      await assert.rejects(VaultKey.open('k', { address: vault.address, token: 'wrong' }), {
        message: /Vault answered 403: permission denied/,
      });
    } finally {
      await vault.close();
    }
  });

  it('names AWS KMS refusals', async () => {
    const kms = await FakeAwsKms.start();
    const restoreEnv = setEnv({ AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    try {
      await assert.rejects(
        AwsKmsKey.open('awskms://x/alias/none', 'alias/none', { endpoint: kms.endpoint, region: 'us-east-1' }),
        {
          code: 'KMS_FAILED',
          message: /^awskms:\/\/x\/alias\/none: AWS KMS refused: NotFoundException: Key 'alias\/none' does not exist/,
        },
      );
    } finally {
      restoreEnv();
      await kms.close();
    }
  });
});

describe('key references (cosign syntax)', () => {
  it('tells files from KMS and HSM URIs', () => {
    assert.deepEqual(parseKeyRef('keys/cosign.key'), { kind: 'file', path: 'keys/cosign.key' });
    assert.deepEqual(parseKeyRef('hashivault://apx-signing'), { kind: 'hashivault', keyName: 'apx-signing' });
    assert.deepEqual(parseKeyRef('awskms:///alias/apx'), { kind: 'awskms', endpoint: undefined, keyId: 'alias/apx' });
    assert.deepEqual(parseKeyRef('awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab'), {
      kind: 'awskms',
      endpoint: 'localhost:4566',
      keyId: '1234abcd-12ab-34cd-56ef-1234567890ab',
    });
    assert.equal(parseKeyRef('gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1').kind, 'gcpkms');
    assert.equal(parseKeyRef('pkcs11:token=t;object=o').kind, 'pkcs11');
    assert.throws(() => parseKeyRef('hashivault://a/b'), { code: 'KEY_REF_INVALID' });
    assert.throws(() => parseKeyRef('awskms://x/notakey'), { code: 'KEY_REF_INVALID' });
    assert.throws(() => parseKeyRef('azurekms://vault/key'), { code: 'KEY_REF_INVALID', message: /unsupported scheme/ });
  });
});

describe('GCP KMS signer', () => {
  it('signs with the highest enabled version, or the one named, and names refusals as gRPC errors', async () => {
    const kms = await FakeGcpKms.start();
    const key = 'projects/apx/locations/global/keyRings/r/cryptoKeys/k';
    kms.addVersion(key);
    kms.addVersion(key);
    try {
      const latest = await GcpKmsKey.open(`gcpkms://${key}`, key, kms.clientOptions());
      const first = await GcpKmsKey.open(
        `gcpkms://${key}/cryptoKeyVersions/1`,
        `${key}/cryptoKeyVersions/1`,
        kms.clientOptions(),
      );
      assert.notEqual((await latest.publicKey()).keyId, (await first.publicKey()).keyId);
      await latest.close();
      await first.close();
      kms.denied.add(key);
      await assert.rejects(GcpKmsKey.open(`gcpkms://${key}`, key, kms.clientOptions()), {
        code: 'KMS_FAILED',
        message:
          /^gcpkms:\/\/.*: rpc error: code = PermissionDenied desc = Permission 'cloudkms\.cryptoKeyVersions\.useToSign' denied/,
      });
    } finally {
      kms.stop();
    }
  });
});
