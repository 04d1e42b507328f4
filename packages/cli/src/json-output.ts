import { sha256Hex } from '@apx/core';
import { type FlagSpec, flagBool, type ParsedArgs } from './command.js';
import type { CliContext } from './context.js';

/** `--json` of compile, sign, sign-blob, verify-blob and publish. */
export const JSON_OUTPUT_FLAG: FlagSpec = {
  name: 'json',
  type: 'boolean',
  description:
    'Print one JSON document on stdout (paths, sha256 digests, key id or identity, reference); progress goes to stderr.',
};

/**
 * The context a command writes its human lines to: with --json, stdout is kept for the one
 * JSON document, so every human line goes to stderr.
 */
export function humanContext(ctx: CliContext, args: ParsedArgs): CliContext {
  return flagBool(args, 'json') ? { ...ctx, stdout: ctx.stderr } : ctx;
}

/** Writes the command's one JSON document (pretty, one trailing newline) to the real stdout. */
export function writeJsonResult(ctx: CliContext, args: ParsedArgs, document: unknown): void {
  if (flagBool(args, 'json')) ctx.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
}

/** `{ path, sha256 }` of a file written or read. */
export function fileJson(path: string, bytes: string | Uint8Array): { path: string; sha256: string } {
  return { path, sha256: sha256Hex(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes) };
}
