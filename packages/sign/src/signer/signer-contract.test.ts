import { generateKeyPairSync } from 'node:crypto';
import { it } from 'node:test';
import { setEnv } from '@apx/core/testing/hygiene';
import { AwsKmsKey, GcpKmsKey, Pkcs11Key, VaultKey } from '@apx/kms';
import { FakeGcpKms } from '@apx/kms/testing/gcp-kms-fake';
import { FakeAwsKms, FakeVault } from '@apx/kms/testing/kms-fakes';
import { SoftHsm, softhsmSkipReason } from '@apx/kms/testing/softhsm';
import { runSignerContract } from '../testing/signer-contract.js';
import { FileSigner } from './file-signer.js';

runSignerContract('file key (ECDSA P-256)', async () => ({
  signer: new FileSigner('test.key', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
  cleanup: async () => {},
}));

runSignerContract('hashivault:// (Vault transit over HTTP)', async () => {
  const vault = await FakeVault.start();
  vault.addKey('apx-signing');
  const signer = await VaultKey.open('apx-signing', { address: vault.address, token: vault.token });
  return { signer, cleanup: () => vault.close() };
});

runSignerContract('awskms:// (official @aws-sdk/client-kms, AWS JSON 1.1)', async () => {
  const kms = await FakeAwsKms.start();
  kms.addKey('1234abcd-12ab-34cd-56ef-1234567890ab', 'apx-signing');
  const restoreEnv = setEnv({ AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  const signer = await AwsKmsKey.open(`awskms://${kms.endpoint}/alias/apx-signing`, 'alias/apx-signing', {
    endpoint: kms.endpoint,
    region: 'us-east-1',
  });
  return {
    signer,
    cleanup: async () => {
      restoreEnv();
      await kms.close();
    },
  };
});

runSignerContract('gcpkms:// (official @google-cloud/kms over gRPC)', async () => {
  const kms = await FakeGcpKms.start();
  const key = 'projects/apx/locations/global/keyRings/apx-signing/cryptoKeys/artifact-signing';
  kms.addVersion(key);
  kms.addVersion(key);
  const signer = await GcpKmsKey.open(`gcpkms://${key}`, key, kms.clientOptions());
  return {
    signer,
    cleanup: async () => {
      await signer.close();
      kms.stop();
    },
  };
});

const softhsmMissing = softhsmSkipReason();
if (softhsmMissing) {
  it('signer contract: pkcs11: (SoftHSM2 token)', { skip: softhsmMissing }, () => {});
} else {
  runSignerContract('pkcs11: (SoftHSM2 token)', async () => {
    // A fresh token each time, and a key generated on it, as `apx generate-key-pair --kms pkcs11:...` does.
    const hsm = SoftHsm.init();
    try {
      const signer = await Pkcs11Key.create(hsm.uri('apx-signing'), {});
      return {
        signer,
        cleanup: async () => {
          await signer.close();
          hsm.cleanup();
        },
      };
    } catch (err) {
      hsm.cleanup();
      throw err;
    }
  });
}
