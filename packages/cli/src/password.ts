import { type PasswordProvider, SignError, SignErrorCode } from '@apx/sign';
import type { CliContext } from './context.js';

/**
 * cosign's password sources, in cosign's order: COSIGN_PASSWORD when it is set, even to
 * the empty string (an empty password still encrypts); otherwise a prompt on a terminal,
 * twice for a new key; otherwise an error saying how to provide one. The password is
 * never echoed and never passed to anything that logs.
 */
export function passwordProvider(ctx: CliContext): PasswordProvider {
  return async ({ keyPath, confirm }) => {
    const fromEnv = ctx.env.COSIGN_PASSWORD;
    if (fromEnv !== undefined) return fromEnv;
    if (!ctx.stdin.isTTY || !ctx.stderr.isTTY) {
      throw new SignError(
        SignErrorCode.PASSWORD_UNAVAILABLE,
        `no password for ${keyPath}: COSIGN_PASSWORD is not set and there is no terminal to ask on`,
        { hint: 'set COSIGN_PASSWORD (COSIGN_PASSWORD="" means an empty password)' },
      );
    }
    const first = await promptHidden(ctx, 'Enter password for private key: ');
    if (!confirm) return first;
    const second = await promptHidden(ctx, 'Enter password for private key again: ');
    if (first !== second) {
      throw new SignError(SignErrorCode.PASSWORD_MISMATCH, 'passwords do not match', { hint: 'run the command again' });
    }
    return first;
  };
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
export function promptHidden(ctx: CliContext, question: string): Promise<string> {
  const input = ctx.stdin as NodeJS.ReadStream;
  // Raw mode before the prompt: anything typed after the prompt is never echoed.
  input.setRawMode?.(true);
  ctx.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      ctx.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') {
          return done(
            new SignError(SignErrorCode.PASSWORD_UNAVAILABLE, 'password entry interrupted', { hint: 'run the command again' }),
          );
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
      return undefined;
    };
    input.resume();
    input.on('data', onData);
  });
}
