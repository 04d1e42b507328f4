// Key custody outside the process: keys held by a cloud KMS, Vault transit or an HSM, named
// by cosign's key references. The signing side (@apx/sign) signs with them; the worker reads
// their public keys. No private key material ever enters the process.

export { AwsKmsKey, type AwsKmsOptions } from './aws.js';
export { KmsError, KmsErrorCode } from './error.js';
export { type GcpKmsClientOptions, GcpKmsKey } from './gcp.js';
export { isKmsRef, type KeyRef, parseKeyRef, redactKeyRef } from './key-ref.js';
export { importClient, type KmsKey, type KmsSignature } from './kms-key.js';
export { createKmsKey, type KmsEnv, openKmsKey, vaultOptions } from './open.js';
export { Pkcs11Key } from './pkcs11/pkcs11-key.js';
export { type Pkcs11Env, type Pkcs11Uri, parsePkcs11Uri } from './pkcs11/uri.js';
export { VaultKey, type VaultOptions } from './vault.js';
