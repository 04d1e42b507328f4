import { ApxError } from '@apx/core';

/** The closed set of error codes of the signing side. */
export const SignErrorCode = {
  /** The private key file (or another key file) does not exist. */
  KEY_NOT_FOUND: 'KEY_NOT_FOUND',
  /** Refusing to overwrite an existing key without --force. */
  KEY_EXISTS: 'KEY_EXISTS',
  /** A private key file that is not a cosign encrypted key (PEM, JSON envelope, base64). */
  PRIVATE_KEY_INVALID: 'PRIVATE_KEY_INVALID',
  /** scrypt parameters outside cosign's allow-list: refused before any work is done. */
  KDF_UNSUPPORTED: 'KDF_UNSUPPORTED',
  /** The envelope did not open: a wrong password, or a modified file. */
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  /** A key to import that cosign would refuse, with cosign's reason. */
  KEY_IMPORT_REFUSED: 'KEY_IMPORT_REFUSED',
  /** No password source: COSIGN_PASSWORD unset and no terminal to prompt on. */
  PASSWORD_UNAVAILABLE: 'PASSWORD_UNAVAILABLE',
  /** The two passwords typed at the prompt differ. */
  PASSWORD_MISMATCH: 'PASSWORD_MISMATCH',
  /** A file could not be read or written. */
  IO_FAILED: 'IO_FAILED',
  /** Keyless signing without an OIDC identity token (no --identity-token, SIGSTORE_ID_TOKEN or CI ambient token). */
  IDENTITY_TOKEN_MISSING: 'IDENTITY_TOKEN_MISSING',
  /** An identity token that is not a JWT with an issuer and a subject, or has expired. */
  IDENTITY_TOKEN_INVALID: 'IDENTITY_TOKEN_INVALID',
  /** Fulcio did not issue a signing certificate (refused the token, or unreachable). */
  CERTIFICATE_REFUSED: 'CERTIFICATE_REFUSED',
  /** The transparency log (Rekor) did not record the signature (refused, or unreachable). */
  TLOG_FAILED: 'TLOG_FAILED',
  /** The timestamp authority did not timestamp the signature (refused, unreachable, bad reply). */
  TIMESTAMP_FAILED: 'TIMESTAMP_FAILED',
  /** A Sigstore signing config file that cannot be used (not JSON, no usable service). */
  SIGNING_CONFIG_INVALID: 'SIGNING_CONFIG_INVALID',
} as const;
export type SignErrorCode = (typeof SignErrorCode)[keyof typeof SignErrorCode];

export class SignError extends ApxError<SignErrorCode> {
  override readonly name = 'SignError';
}
