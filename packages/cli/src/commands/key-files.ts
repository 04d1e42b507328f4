import { access, unlink } from 'node:fs/promises';
import { type EncodedKeyPair, SignError, SignErrorCode, writeFileAtomic } from '@apx/sign';
import { type CliContext, info } from '../context.js';
import { resolvePath } from '../io.js';

/**
 * Writes PREFIX.key (0600) and PREFIX.pub (0644) as one step: without --force nothing is
 * written when either exists, and a failure on the public key removes the private key this
 * call created, so no half pair is left behind.
 */
export async function writeKeyPairFiles(ctx: CliContext, prefix: string, pair: EncodedKeyPair, force: boolean): Promise<void> {
  const keyPath = resolvePath(ctx, `${prefix}.key`);
  const pubPath = resolvePath(ctx, `${prefix}.pub`);
  if (!force) {
    for (const [path, shown] of [
      [keyPath, `${prefix}.key`],
      [pubPath, `${prefix}.pub`],
    ] as const) {
      const exists = await access(path).then(
        () => true,
        () => false,
      );
      if (exists) {
        throw new SignError(SignErrorCode.KEY_EXISTS, `refusing to overwrite ${shown}: the file exists`, {
          hint: 'pass --force to replace the key pair, or choose another --output-key-prefix',
        });
      }
    }
  }
  await writeFileAtomic(keyPath, pair.privatePem, { mode: 0o600, overwrite: force });
  try {
    await writeFileAtomic(pubPath, pair.publicPem, { mode: 0o644, overwrite: force });
  } catch (err) {
    if (!force) await unlink(keyPath).catch(() => undefined);
    throw err;
  }
}

/** What generate-key-pair and import-key-pair say when done: where the files are, the key id. */
export function reportKeyPair(ctx: CliContext, prefix: string, pair: EncodedKeyPair): void {
  info(ctx, `Private key written to ${prefix}.key`);
  info(ctx, `Public key written to ${prefix}.pub`);
  info(ctx, `Key id: ${pair.publicKey.keyId}`);
}
