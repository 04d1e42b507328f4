// The worker trusting the signing key's own public half, read from a KMS: Cloud KMS over
// gRPC, AWS KMS over AWS JSON 1.1 and Vault transit over HTTP, each a local server speaking
// the provider's wire protocol, driven by the official clients.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setEnv } from '@apx/core/testing/hygiene';
import { openKmsKey } from '@apx/kms';
import { FakeGcpKms } from '@apx/kms/testing/gcp-kms-fake';
import { FakeAwsKms, FakeVault } from '@apx/kms/testing/kms-fakes';
import type { WorkerError } from './error.js';
import { keyProviderFromRef } from './keys.js';
import { KmsKeyProvider } from './kms-key.js';
import type { TrustedKeyInfo } from './refreshing-key.js';

const MESSAGE = Buffer.from('a policy artifact');
const KEY = 'projects/apx-prod/locations/global/keyRings/apx-signing/cryptoKeys/artifact-signing';

describe('worker: public key from a KMS key', () => {
  let gcp: FakeGcpKms;
  let env: Record<string, string>;
  before(async () => {
    gcp = await FakeGcpKms.start();
    env = { APX_GCPKMS_ENDPOINT: `127.0.0.1:${gcp.port}` };
  });
  after(() => gcp.stop());

  it('trusts the highest enabled Cloud KMS version, and the next one after a refresh, with no restart', async () => {
    gcp.addVersion(KEY);
    let clock = 0;
    const loaded: TrustedKeyInfo[] = [];
    const keys = keyProviderFromRef(`gcpkms://${KEY}`, {
      env,
      cwd: '/nonexistent',
      kms: { refreshIntervalMs: 60_000, now: () => clock, onKeyLoaded: (k) => loaded.push(k) },
    });
    assert.ok(keys instanceof KmsKeyProvider, 'gcpkms:// dispatches to the KMS provider');
    const signWith = async (ref: string) => {
      const key = await openKmsKey(ref, env);
      try {
        return (await key.sign(MESSAGE)).signature;
      } finally {
        await key.close();
      }
    };
    (await keys.verifier()).verify(MESSAGE, await signWith(`gcpkms://${KEY}`));
    assert.equal(loaded[0]?.version, `${KEY}/cryptoKeyVersions/1`);

    gcp.addVersion(KEY); // rotation at the provider
    const v2 = await signWith(`gcpkms://${KEY}/cryptoKeyVersions/2`);
    const cached = await keys.verifier(); // version 1 until the refresh interval has passed
    assert.throws(() => cached.verify(MESSAGE, v2), { code: 'SIGNATURE_INVALID' });
    clock += 60_001;
    (await keys.verifier()).verify(MESSAGE, v2);
    assert.deepEqual(
      loaded.map((k) => k.version),
      [`${KEY}/cryptoKeyVersions/1`, `${KEY}/cryptoKeyVersions/2`],
    );
  });

  it('keeps the last good key when a refresh is refused, and names the refusal', async () => {
    const key = `${KEY}-denied`;
    gcp.addVersion(key);
    let clock = 0;
    const errors: WorkerError[] = [];
    const keys = new KmsKeyProvider(`gcpkms://${key}`, env, {
      refreshIntervalMs: 1000,
      now: () => clock,
      onRefreshError: (e) => errors.push(e),
    });
    const good = await keys.verifier();
    gcp.denied.add(key);
    clock += 1001;
    assert.equal(await keys.verifier(), good);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]?.message ?? '',
      /^public key not available: gcpkms:\/\/.*-denied \(rpc error: code = PermissionDenied desc = Permission 'cloudkms\.cryptoKeyVersions\.useToSign' denied/,
    );
    assert.equal(errors[0]?.code, 'PUBLIC_KEY_UNAVAILABLE');
    assert.match(errors[0]?.hint ?? '', /roles\/cloudkms/);
    const fresh = new KmsKeyProvider(`gcpkms://${key}`, env);
    await assert.rejects(fresh.verifier(), { code: 'PUBLIC_KEY_UNAVAILABLE', message: /PermissionDenied/ });
  });

  it('reads AWS KMS and Vault transit keys the same way', async (t) => {
    const aws = await FakeAwsKms.start();
    const vault = await FakeVault.start();
    try {
      aws.addKey('1234abcd-12ab-34cd-56ef-1234567890ab', 'apx-signing');
      vault.addKey('apx-signing');
      const restoreEnv = setEnv({ AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
      t.after(restoreEnv);
      const kmsEnv = { AWS_REGION: 'us-east-1', VAULT_ADDR: vault.address, VAULT_TOKEN: vault.token };
      for (const ref of [`awskms://${aws.endpoint}/alias/apx-signing`, 'hashivault://apx-signing']) {
        const signer = await openKmsKey(ref, kmsEnv);
        const signature = (await signer.sign(MESSAGE)).signature;
        await signer.close();
        const keys = keyProviderFromRef(ref, { env: kmsEnv, cwd: '/nonexistent' });
        (await keys.verifier()).verify(MESSAGE, signature);
      }
      const missing = keyProviderFromRef('hashivault://apx-signing', { env: {}, cwd: '/nonexistent' });
      await assert.rejects(missing.verifier(), {
        message: 'public key not available: hashivault://apx-signing (VAULT_ADDR and VAULT_TOKEN must be set)',
      });
    } finally {
      await aws.close();
      await vault.close();
    }
  });
});
