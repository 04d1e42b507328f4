import { ApxError } from '@apx/core';

/** The closed set of error codes the CLI itself raises (the packages raise their own). */
export const CliErrorCode = {
  INPUT_NOT_FOUND: 'INPUT_NOT_FOUND',
  INPUT_UNREADABLE: 'INPUT_UNREADABLE',
  /** Signing with a key a rotation retired for the environment. */
  KEY_RETIRED: 'KEY_RETIRED',
  /** An input refused as given (a trailing newline in an API key read without --strip-newline...). */
  INPUT_REFUSED: 'INPUT_REFUSED',
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

export class CliError extends ApxError<CliErrorCode> {
  override readonly name = 'CliError';
}
