import type { Readable, Writable } from 'node:stream';

/**
 * Everything a command may touch of the outside world. The CLI is the composition root:
 * only here are argv, the environment and the terminal read; packages get values.
 */
export interface CliContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable & { isTTY?: boolean };
}

export function processContext(): CliContext {
  return { env: process.env, cwd: process.cwd(), stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

/** Writes one line to stderr: progress and results people read, not data. */
export function info(ctx: CliContext, line: string): void {
  ctx.stderr.write(`${line}\n`);
}
