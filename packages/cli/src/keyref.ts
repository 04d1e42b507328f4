import { createPrivateKey } from 'node:crypto';
import { decodeFirstPem, PublicKey } from '@apx/core';
import { parseKeyRef } from '@apx/kms/key-ref';
import type { Signer } from '@apx/sign';
import { UsageError } from './command.js';
import type { CliContext } from './context.js';
import { readInput, resolvePath } from './io.js';
import { keepOpen } from './open-signers.js';

// The signing library (and the password prompt, which speaks its errors) load when a key is
// opened for signing: verifying with a public key (apx verify-blob --key cosign.pub) needs neither.
const signModule = () => import('@apx/sign');
const askPassword = async (ctx: CliContext) => (await import('./password.js')).passwordProvider(ctx);

/** Where `apx` looks for the signing key when no --key is given (the runbook's path). */
export const DEFAULT_PRIVATE_KEY = 'keys/cosign.key';
export const DEFAULT_PUBLIC_KEY = 'keys/cosign.pub';

/**
 * A signer from a key reference in cosign's syntax: a cosign key file, `env://VAR`, or a key held by a KMS
 * or HSM (hashivault://, awskms://, gcpkms://, pkcs11:), configured from the environment
 * under cosign's variable names. Key files keep the path the user gave in messages (the
 * runbook's `key file not found at keys/cosign.key`).
 */
export async function openSigner(ctx: CliContext, keyRef: string): Promise<Signer> {
  if (keyRef.startsWith('env://')) return envSigner(ctx, keyRef);
  if (parseKeyRef(keyRef).kind === 'file')
    return (await signModule()).FileSigner.open(resolvePath(ctx, keyRef), await askPassword(ctx), keyRef);
  // The KMS and HSM clients load only for such keys (the reference parser is all a start needs).
  const { openKmsKey } = await import('@apx/kms');
  const key = await openKmsKey(keyRef, ctx.env);
  keepOpen(ctx, key);
  return key;
}

/**
 * `--key env://VAR`, as cosign takes it: the private key's PEM in an environment variable (for
 * CI secrets), either cosign's encrypted key (password from COSIGN_PASSWORD, as for key files)
 * or a plain PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Messages name the variable, never its value.
 */
async function envSigner(ctx: CliContext, keyRef: string): Promise<Signer> {
  const name = keyRef.slice('env://'.length);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new UsageError(`--key ${keyRef}: ${name || '(empty)'} is not an environment variable name`);
  }
  const { decryptPrivateKey, FileSigner, SignError, SignErrorCode } = await signModule();
  const pem = ctx.env[name];
  if (pem === undefined || pem.trim() === '') {
    throw new SignError(SignErrorCode.KEY_NOT_FOUND, `environment variable ${name} (--key ${keyRef}) is empty or unset`, {
      hint: `set ${name} to the private key's PEM (cosign's encrypted key, or a plain PKCS#8 PEM)`,
    });
  }
  const label = decodeFirstPem(pem)?.label;
  if (label === 'PRIVATE KEY') {
    try {
      return new FileSigner(keyRef, createPrivateKey({ key: pem, format: 'pem' }));
    } catch {
      throw new SignError(
        SignErrorCode.PRIVATE_KEY_INVALID,
        `invalid private key in environment variable ${name}: not a PKCS#8 key`,
        { hint: 'put the PEM of a PKCS#8 private key (-----BEGIN PRIVATE KEY-----) or a cosign key in it' },
      );
    }
  }
  if (label === undefined || !label.endsWith('PRIVATE KEY')) {
    throw new SignError(
      SignErrorCode.PRIVATE_KEY_INVALID,
      `invalid private key in environment variable ${name}: ${label === undefined ? 'no PEM block' : `PEM type "${label}" is not a private key`}`,
      { hint: "put cosign's encrypted private key (cosign.key) or a plain PKCS#8 PEM in it" },
    );
  }
  const password = await (await askPassword(ctx))({ keyPath: keyRef, confirm: false });
  return new FileSigner(keyRef, await decryptPrivateKey(pem, password, `environment variable ${name}`));
}

/**
 * A public key from a reference: a PEM public key file, `env://VAR` holding the PEM, a key
 * held by a KMS or HSM, or a private key file (cosign.key), whose public half is used after
 * asking its password.
 */
export async function loadPublicKey(ctx: CliContext, keyRef: string): Promise<PublicKey> {
  if (keyRef.startsWith('env://')) {
    const name = keyRef.slice('env://'.length);
    const pem = ctx.env[name];
    if (pem === undefined || pem === '') {
      return PublicKey.fromPem('', `environment variable ${name} (empty or unset)`);
    }
    // A private key there (the signing key of a CI job): its public half.
    if (decodeFirstPem(pem)?.label.endsWith('PRIVATE KEY')) return (await openSigner(ctx, keyRef)).publicKey();
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
