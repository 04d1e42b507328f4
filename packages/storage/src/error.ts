import { ApxError } from '@apx/core';

/**
 * The closed set of error codes of the storage side. Codes are API (the worker labels
 * metrics with them); messages name the store by its display URL, never a credential.
 */
export const StorageErrorCode = {
  /** A store URL APX cannot parse or does not support. */
  INVALID_URL: 'INVALID_URL',
  /** An object name or artifact reference that is not allowed (path traversal, bad semver...). */
  INVALID_NAME: 'INVALID_NAME',
  /** The artifact asked for does not exist in the store. */
  NOT_FOUND: 'NOT_FOUND',
  /** An object over the size cap; for an artifact the runbook's `artifact too large: ...`. */
  TOO_LARGE: 'TOO_LARGE',
  /** A download shorter or longer than announced, or whose digest is not the one announced. */
  INTEGRITY: 'INTEGRITY',
  /** A local store's object that is not a regular file (FIFO, socket, device, directory): never read. */
  NOT_A_FILE: 'NOT_A_FILE',
  /** The store did not answer: connection refused, DNS failure, timeout. */
  UNREACHABLE: 'UNREACHABLE',
  /** The store refused the credentials (401/403). */
  DENIED: 'DENIED',
  /** A published version is immutable: the store already holds different bytes under that name. */
  CONFLICT: 'CONFLICT',
  /** Publishing an artifact without its signature (strict, like the worker). */
  UNSIGNED: 'UNSIGNED',
  /** The optional SDK a scheme needs is not installed. */
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
  /** Any other failed request or file operation, with the store's reason. */
  REQUEST_FAILED: 'REQUEST_FAILED',
} as const;
export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

export class StorageError extends ApxError<StorageErrorCode> {
  override readonly name = 'StorageError';
}

export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}
