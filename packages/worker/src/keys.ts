import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isApxError, type KeysTrust, keysTrust, PublicKey, SignatureVerifier } from '@apx/core';
import { WorkerError, WorkerErrorCode } from './error.js';
import { isKmsKeyRef, KmsKeyProvider } from './kms-key.js';
import type { RefreshingKeyOptions } from './refreshing-key.js';
import { SECRET_VERSION_REF, type SecretManagerKeyOptions, SecretManagerKeyProvider } from './secret-manager.js';

/** Where the worker gets the key it trusts; each call may refresh (rotation without restart). */
export interface TrustedKeyProvider {
  /** Where it looks, for messages: `keys/cosign.pub`, `env://APX_PUBKEY`... */
  readonly description: string;
  verifier(): Promise<SignatureVerifier>;
  /** Releases connections (a secret store's channel); the worker calls it on stop. */
  close?(): Promise<void>;
}

function unavailable(where: string, why: string, cause?: unknown): WorkerError {
  return new WorkerError(WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE, `public key not available: ${where} (${why})`, {
    hint: "set APX_PUBLIC_KEY to the signer's public key (a PEM file, env://VAR, projects/P/secrets/S/versions/V or the signing key's KMS URI)",
    cause,
  });
}

/**
 * A key from a file, an environment variable, a GCP Secret Manager secret version
 * (`projects/P/secrets/S/versions/V`, read with the official client, imported lazily) or a
 * KMS or HSM key (gcpkms://, awskms://, hashivault://, pkcs11:; its public half). The
 * parsed verifier is cached; a file is re-read when its content changes and a secret on a
 * schedule, so a rotated key takes effect without a restart and without re-parsing on
 * every load.
 */
export function keyProviderFromRef(
  ref: string,
  options: {
    env: Record<string, string | undefined>;
    cwd: string;
    secretManager?: SecretManagerKeyOptions;
    kms?: RefreshingKeyOptions;
  },
): TrustedKeyProvider {
  if (SECRET_VERSION_REF.test(ref)) return new SecretManagerKeyProvider(ref, options.secretManager);
  if (!ref.startsWith('env://') && isKmsKeyRef(ref)) return new KmsKeyProvider(ref, options.env, options.kms);
  if (ref.startsWith('env://')) {
    const name = ref.slice('env://'.length);
    let cached: SignatureVerifier | undefined;
    return {
      description: ref,
      async verifier() {
        if (cached) return cached;
        const pem = options.env[name];
        if (!pem) throw unavailable(ref, 'the variable is unset or empty');
        try {
          cached = new SignatureVerifier(PublicKey.fromPem(pem, ref));
        } catch (err) {
          throw unavailable(ref, isApxError(err) ? err.message : 'not a PEM public key', err);
        }
        return cached;
      },
    };
  }
  const path = resolve(options.cwd, ref);
  // The file is re-read when its content changes, so replacing it needs no restart.
  let cached: { verifier: SignatureVerifier; text: string } | undefined;
  return {
    description: ref,
    async verifier() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if (cached) return cached.verifier; // keep the last good key if the file vanishes mid-replacement
        const code = (err as NodeJS.ErrnoException).code;
        throw unavailable(ref, code === 'ENOENT' ? 'file not found' : (err as Error).message, err);
      }
      if (cached && cached.text === text) return cached.verifier;
      if (text.trimStart().startsWith('{')) {
        throw unavailable(
          ref,
          'keyring files are gone: trust several keys, rotate and revoke with the trust repository (APX_TRUST_REPOSITORY)',
        );
      }
      try {
        cached = { verifier: new SignatureVerifier(PublicKey.fromPem(text, ref)), text };
        return cached.verifier;
      } catch (err) {
        throw unavailable(ref, isApxError(err) ? err.message : 'not a PEM public key', err);
      }
    },
  };
}

const trusts = new WeakMap<SignatureVerifier, KeysTrust>();

/** Runbook trust: the provider's one key (built once per key, not per load). */
export async function keysTrustOf(provider: TrustedKeyProvider): Promise<KeysTrust> {
  const verifier = await provider.verifier();
  let trust = trusts.get(verifier);
  if (!trust) {
    trust = keysTrust(verifier);
    trusts.set(verifier, trust);
  }
  return trust;
}
