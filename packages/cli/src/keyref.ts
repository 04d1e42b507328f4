import { decodeFirstPem, PublicKey } from '@apx/core';
import { FileSigner, type Signer } from '@apx/sign';
import type { CliContext } from './context.js';
import { readInput, resolvePath } from './io.js';
import { passwordProvider } from './password.js';

/** Where `apx` looks for the signing key when no --key is given (the runbook's path). */
export const DEFAULT_PRIVATE_KEY = 'keys/cosign.key';
export const DEFAULT_PUBLIC_KEY = 'keys/cosign.pub';

/**
 * A signer from a key reference. Today: a cosign key file. The path in messages is the
 * one the user gave (the runbook's `key file not found at keys/cosign.key`).
 */
export async function openSigner(ctx: CliContext, keyRef: string): Promise<Signer> {
  return FileSigner.open(resolvePath(ctx, keyRef), passwordProvider(ctx), keyRef);
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
  const text = (await readInput(ctx, keyRef, 'key file', 'pass the public key with --key, e.g. --key keys/cosign.pub')).toString(
    'utf8',
  );
  const label = decodeFirstPem(text)?.label ?? '';
  if (label.startsWith('ENCRYPTED') && label.endsWith('PRIVATE KEY')) {
    return (await openSigner(ctx, keyRef)).publicKey();
  }
  return PublicKey.fromPem(text, keyRef);
}
