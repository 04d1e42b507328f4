import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileError } from '@apx/core/os-error';
import type { CliContext } from './context.js';
import { CliError, CliErrorCode } from './error.js';

/**
 * Reads a file named on the command line. `what` says what it is ("signature file",
 * "bundle file"), so a missing file reads `signature file not found: x.sig`. `-` is stdin.
 */
export async function readInput(ctx: CliContext, path: string, what: string, hint: string): Promise<Buffer> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(resolve(ctx.cwd, path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(CliErrorCode.INPUT_NOT_FOUND, `${what} not found: ${path}`, { hint });
    if (code === 'EISDIR') throw new CliError(CliErrorCode.INPUT_UNREADABLE, `${what} is a directory: ${path}`, { hint });
    const clear = fileError(err, { what, path, cwd: ctx.cwd, expect: 'file', access: 'read' });
    if (clear) throw clear;
    throw new CliError(CliErrorCode.INPUT_UNREADABLE, `cannot read ${what} ${path}: ${(err as Error).message}`, {
      hint,
      cause: err,
    });
  }
}

export function resolvePath(ctx: CliContext, path: string): string {
  return resolve(ctx.cwd, path);
}

/** Reads a file that may be absent (a signature or bundle beside an artifact): undefined when it is. */
export async function readOptional(ctx: CliContext, path: string, what: string, hint: string): Promise<Buffer | undefined> {
  try {
    return await readInput(ctx, path, what, hint);
  } catch (err) {
    if (err instanceof CliError && err.code === CliErrorCode.INPUT_NOT_FOUND) return undefined;
    throw err;
  }
}
