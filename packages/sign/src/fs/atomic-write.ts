import { randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SignError, SignErrorCode } from '../error.js';

export interface AtomicWriteOptions {
  /** File mode of the new file (0o600 for private keys). */
  mode?: number;
  /** Replace an existing file. Without it an existing file is an error, decided atomically. */
  overwrite?: boolean;
}

/**
 * Writes a file so that readers see either nothing (or the old content) or the whole new
 * content, never a half: the bytes go to a temporary file in the same directory, are
 * flushed, then renamed (overwrite) or hard-linked (no overwrite: link fails if the name
 * exists, so two writers cannot both win). The temporary file is always removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let placed = false;
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.overwrite) {
      await rename(temp, path);
      placed = true;
    } else {
      try {
        await link(temp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new SignError(SignErrorCode.KEY_EXISTS, `refusing to overwrite ${path}: the file exists`, {
            hint: 'pass --force to replace it, or choose another --output-key-prefix',
          });
        }
        throw err;
      }
    }
  } catch (err) {
    if (err instanceof SignError) throw err;
    throw new SignError(SignErrorCode.IO_FAILED, `cannot write ${path}: ${(err as Error).message}`, {
      hint: 'check that the directory exists and is writable',
      cause: err,
    });
  } finally {
    if (!placed) await unlink(temp).catch(() => undefined);
  }
}
