import { ApxError } from '@apx/core';

/** The closed set of error codes of key custody outside the process. */
export const KmsErrorCode = {
  /** A key reference that is not a path nor a supported URI (gcpkms://, awskms://, hashivault://, pkcs11:). */
  KEY_REF_INVALID: 'KEY_REF_INVALID',
  /** A key management service or HSM refused or failed (its reason is in the message). */
  KMS_FAILED: 'KMS_FAILED',
  /** A key of a type the custody cannot sign with for APX (e.g. a symmetric or encryption key). */
  KEY_UNSUPPORTED: 'KEY_UNSUPPORTED',
  /** The client library for a scheme is not installed (the SDKs are optional). */
  CLIENT_MISSING: 'CLIENT_MISSING',
  /** Creating a key where one of that name already exists. */
  KEY_EXISTS: 'KEY_EXISTS',
} as const;
export type KmsErrorCode = (typeof KmsErrorCode)[keyof typeof KmsErrorCode];

export class KmsError extends ApxError<KmsErrorCode> {
  override readonly name = 'KmsError';
}
