import { randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type FileOperation, fileError } from '@apx/core/os-error';
import { SignError, SignErrorCode } from '../error.js';

export interface AtomicWriteOptions {
  /** File mode of the new file (0o600 for private keys). */
  mode?: number;
  /** Replace an existing file. Without it an existing file is an error, decided atomically. */
  overwrite?: boolean;
  /**
   * How messages name the file: what it is ("signature file"), the path as the user wrote it
   * and the flag that named it. Default: "file" and the path written.
   */
  describe?: Partial<Pick<FileOperation, 'what' | 'path' | 'cwd' | 'setting'>>;
}

/**
 * Writes a file so that readers see either nothing (or the old content) or the whole new
 * content, never a half: the bytes go to a temporary file in the same directory, are
 * flushed, then renamed (overwrite) or hard-linked (no overwrite: link fails if the name
 * exists, so two writers cannot both win). The temporary file is always removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let placed = false;
  try {
    await mkdir(dir, { recursive: true });
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
    // Ordinary mistakes (a directory in the way, a file where a directory belongs, no
    // permission, a full disk) say so and name the flag; anything else keeps the system's words.
    const clear = fileError(err, { what: 'file', path, ...options.describe, expect: 'file', access: 'write' });
    if (clear) throw clear;
    throw new SignError(SignErrorCode.IO_FAILED, `cannot write ${path}: ${(err as Error).message}`, {
      hint: 'check that the directory exists and is writable',
      cause: err,
    });
  } finally {
    if (!placed) await unlink(temp).catch(() => undefined);
  }
}
