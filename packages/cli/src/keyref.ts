import { decodeFirstPem, PublicKey } from '@apx/core';
import {
  AwsKmsSigner,
  FileSigner,
  GcpKmsSigner,
  parseKeyRef,
  SignError,
  SignErrorCode,
  type Signer,
  type VaultOptions,
  VaultSigner,
} from '@apx/sign';
import type { CliContext } from './context.js';
import { readInput, resolvePath } from './io.js';
import { passwordProvider } from './password.js';

/** Where `apx` looks for the signing key when no --key is given (the runbook's path). */
export const DEFAULT_PRIVATE_KEY = 'keys/cosign.key';
export const DEFAULT_PUBLIC_KEY = 'keys/cosign.pub';

/** Vault's address and token, as cosign reads them (VAULT_* or OpenBao's BAO_*). */
export function vaultOptions(ctx: CliContext, keyRef: string): VaultOptions {
  const address = ctx.env.VAULT_ADDR ?? ctx.env.BAO_ADDR;
  const token = ctx.env.VAULT_TOKEN ?? ctx.env.BAO_TOKEN;
  if (!address || !token) {
    throw new SignError(SignErrorCode.KMS_FAILED, `${keyRef}: VAULT_ADDR and VAULT_TOKEN must be set`, {
      hint: 'export VAULT_ADDR=https://vault.example.com:8200 and VAULT_TOKEN for a token allowed to use the transit key',
    });
  }
  const transitPath = ctx.env.TRANSIT_SECRET_ENGINE_PATH;
  return { address, token, ...(transitPath ? { transitPath } : {}) };
}

/**
 * A signer from a key reference in cosign's syntax: a cosign key file, hashivault://KEY
 * (Vault transit) or awskms://[ENDPOINT]/KEY. Key files keep the path the user gave in
 * messages (the runbook's `key file not found at keys/cosign.key`).
 */
export async function openSigner(ctx: CliContext, keyRef: string): Promise<Signer> {
  const ref = parseKeyRef(keyRef);
  switch (ref.kind) {
    case 'file':
      return FileSigner.open(resolvePath(ctx, keyRef), passwordProvider(ctx), keyRef);
    case 'hashivault':
      return VaultSigner.open(ref.keyName, vaultOptions(ctx, keyRef));
    case 'awskms':
      return AwsKmsSigner.open(keyRef, ref.endpoint, ref.keyId, ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION);
    case 'gcpkms': {
      const endpoint = ctx.env.APX_GCPKMS_ENDPOINT;
      return GcpKmsSigner.open(keyRef, ref.name, endpoint ? GcpKmsSigner.emulatorOptions(endpoint) : {});
    }
    default:
      throw new SignError(SignErrorCode.KEY_REF_INVALID, `${keyRef}: ${ref.kind} keys are not supported by this version of apx`, {
        hint: 'use a cosign key file, hashivault://KEY, awskms://[ENDPOINT]/KEY or gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K',
      });
  }
}

/**
 * A public key from a reference: a PEM public key file, `env://VAR` holding the PEM, or a
 * private key file (cosign.key), whose public half is used after asking its password.
 */
export async function loadPublicKey(ctx: CliContext, keyRef: string): Promise<PublicKey> {
  if (keyRef.startsWith('env://')) {
    const name = keyRef.slice('env://'.length);
    const pem = ctx.env[name];
    if (pem === undefined || pem === '') {
      return PublicKey.fromPem('', `environment variable ${name} (empty or unset)`);
    }
    return PublicKey.fromPem(pem, `environment variable ${name}`);
  }
  if (parseKeyRef(keyRef).kind !== 'file') return (await openSigner(ctx, keyRef)).publicKey();
  const text = (await readInput(ctx, keyRef, 'key file', 'pass the public key with --key, e.g. --key keys/cosign.pub')).toString(
    'utf8',
  );
  const label = decodeFirstPem(text)?.label ?? '';
  if (label.startsWith('ENCRYPTED') && label.endsWith('PRIVATE KEY')) {
    return (await openSigner(ctx, keyRef)).publicKey();
  }
  return PublicKey.fromPem(text, keyRef);
}
