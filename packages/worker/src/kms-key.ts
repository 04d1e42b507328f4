import { isApxError, SignatureVerifier } from '@apx/core';
import type { KmsEnv } from '@apx/kms';
import { isKmsRef, redactKeyRef } from '@apx/kms/key-ref';
import { WorkerError, WorkerErrorCode } from './error.js';
import { type RefreshingKeyOptions, RefreshingKeyProvider, type TrustedKeyInfo } from './refreshing-key.js';

/** True when APX_PUBLIC_KEY names a key held by a KMS (gcpkms://, awskms://, hashivault://) or an HSM (pkcs11:). */
export function isKmsKeyRef(ref: string): boolean {
  try {
    return isKmsRef(ref);
  } catch {
    return true; // a malformed KMS URI: let the provider report it on first read
  }
}

/**
 * The trusted key read from a KMS or HSM: the public half of the signing key itself, so the
 * worker trusts what the signing side signs with, with no copy to keep in step. The key is
 * opened, its public key read and the connection closed at each refresh; for a reference
 * without a version (gcpkms://.../cryptoKeys/K, hashivault://K, an alias) a refresh picks up
 * the version now in use, so rotating the key at the provider needs no restart. The client
 * library of the scheme loads only here. Reading a public key needs only the provider's
 * "view public key" permission, never the right to sign.
 */
export class KmsKeyProvider extends RefreshingKeyProvider {
  private readonly env: KmsEnv;
  /** The reference as configured, which may hold a PKCS#11 PIN: used to open the key, never shown. */
  private readonly keyRef: string;

  constructor(ref: string, env: KmsEnv, options: RefreshingKeyOptions = {}) {
    super(redactKeyRef(ref), options);
    this.keyRef = ref;
    this.env = env;
  }

  protected async read(): Promise<{ verifier: SignatureVerifier; info: TrustedKeyInfo }> {
    // The KMS and HSM clients load at the first read, not with every worker.
    const { openKmsKey } = await import('@apx/kms');
    const key = await openKmsKey(this.keyRef, this.env);
    try {
      const publicKey = await key.publicKey();
      return {
        verifier: new SignatureVerifier(publicKey),
        info: { ref: this.ref, version: key.version ?? key.keyRef, keyId: publicKey.keyId },
      };
    } finally {
      await key.close().catch(() => undefined);
    }
  }

  /** `public key not available: <ref> (<the provider's reason>)`, with the provider's hint. */
  protected failure(err: unknown): WorkerError {
    const message = err instanceof Error ? err.message : String(err);
    // KmsKey messages start with the (redacted) reference; the worker's line names it once.
    const prefix = `${this.ref}: `;
    const why = message.startsWith(prefix) ? message.slice(prefix.length) : message;
    return new WorkerError(WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE, `public key not available: ${this.ref} (${why})`, {
      hint: isApxError(err) && err.hint ? err.hint : 'check the key reference and the worker’s credentials for the KMS',
      cause: err,
    });
  }
}
