import { AwsKmsKey } from './aws.js';
import { KmsError, KmsErrorCode } from './error.js';
import { GcpKmsKey } from './gcp.js';
import { type KeyRef, parseKeyRef } from './key-ref.js';
import type { KmsKey } from './kms-key.js';
import { Pkcs11Key } from './pkcs11/pkcs11-key.js';
import { VaultKey, type VaultOptions } from './vault.js';

/** The environment a key reference is resolved in (the composition root passes process.env). */
export type KmsEnv = Readonly<Record<string, string | undefined>>;

/** Vault's address and token, as cosign reads them (VAULT_* or OpenBao's BAO_*). */
export function vaultOptions(env: KmsEnv, keyRef: string): VaultOptions {
  const address = env.VAULT_ADDR ?? env.BAO_ADDR;
  const token = env.VAULT_TOKEN ?? env.BAO_TOKEN;
  if (!address || !token) {
    throw new KmsError(KmsErrorCode.KMS_FAILED, `${keyRef}: VAULT_ADDR and VAULT_TOKEN must be set`, {
      hint: 'export VAULT_ADDR=https://vault.example.com:8200 and VAULT_TOKEN for a token allowed to use the transit key',
    });
  }
  // The address is shown in messages: it must carry no secret (the token has its own variable).
  let url: URL | undefined;
  try {
    url = new URL(address);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) {
    throw new KmsError(KmsErrorCode.KMS_FAILED, `${keyRef}: VAULT_ADDR must be a plain http(s) address (scheme, host, port)`, {
      hint: 'put the token in VAULT_TOKEN, never in the address: export VAULT_ADDR=https://vault.example.com:8200',
    });
  }
  const transitPath = env.TRANSIT_SECRET_ENGINE_PATH;
  return { address, token, ...(transitPath ? { transitPath } : {}) };
}

function awsOptions(env: KmsEnv, endpoint: string | undefined) {
  return { endpoint, region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION };
}

function gcpOptions(env: KmsEnv) {
  const endpoint = env.APX_GCPKMS_ENDPOINT;
  return endpoint ? GcpKmsKey.emulatorOptions(endpoint) : {};
}

type Remote = Exclude<KeyRef, { kind: 'file' }>;

function remote(keyRef: string): Remote {
  const ref = parseKeyRef(keyRef);
  if (ref.kind === 'file') {
    throw new KmsError(KmsErrorCode.KEY_REF_INVALID, `${keyRef} is a key file, not a KMS or HSM key`, {
      hint: 'use hashivault://KEY, awskms://[ENDPOINT]/KEY, gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K or pkcs11:...',
    });
  }
  return ref;
}

/**
 * Opens a key held by a KMS or HSM from its reference in cosign's syntax; the provider's
 * settings come from `env` under cosign's names (VAULT_ADDR, AWS_REGION, COSIGN_PKCS11_PIN...).
 * Only the client library of the scheme used is loaded.
 */
export async function openKmsKey(keyRef: string, env: KmsEnv): Promise<KmsKey> {
  const ref = remote(keyRef);
  switch (ref.kind) {
    case 'hashivault':
      return VaultKey.open(ref.keyName, vaultOptions(env, keyRef));
    case 'awskms':
      return AwsKmsKey.open(keyRef, ref.keyId, awsOptions(env, ref.endpoint));
    case 'gcpkms':
      return GcpKmsKey.open(keyRef, ref.name, gcpOptions(env));
    case 'pkcs11':
      return Pkcs11Key.open(ref.uri, env);
  }
}

/** `apx generate-key-pair --kms URI`: creates the key where the provider lets APX choose its name. */
export async function createKmsKey(keyRef: string, env: KmsEnv): Promise<KmsKey> {
  const ref = remote(keyRef);
  switch (ref.kind) {
    case 'hashivault':
      return VaultKey.create(ref.keyName, vaultOptions(env, keyRef));
    case 'awskms':
      if (!ref.keyId.startsWith('alias/')) {
        throw new KmsError(KmsErrorCode.KEY_REF_INVALID, `${keyRef}: AWS chooses key ids; name the new key by an alias`, {
          hint: 'use awskms://[ENDPOINT]/alias/NAME',
        });
      }
      return AwsKmsKey.create(keyRef, ref.keyId, awsOptions(env, ref.endpoint));
    case 'gcpkms':
      return GcpKmsKey.create(keyRef, ref.name, gcpOptions(env));
    case 'pkcs11':
      return Pkcs11Key.create(ref.uri, env);
  }
}
