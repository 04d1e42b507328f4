// The worker's trusted metadata on its own disk (APX_STATE_DIR): written atomically (temp
// file, fsync, rename, fsync of the directory), so a crash leaves the old file or the new
// one, never half of either.

import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { replaceFileDurably } from '@apx/storage';
import { TrustError, TrustErrorCode } from '../error.js';

export class StateDir {
  readonly path: string;

  constructor(path: string) {
    // Absolute from the start: Node's recursive mkdir spins forever on a relative path once
    // the working directory has been deleted.
    this.path = resolve(path);
  }

  async read(name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.path, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      throw this.#error('read', name, err);
    }
  }

  async write(name: string, bytes: Uint8Array): Promise<void> {
    try {
      await mkdir(this.path, { recursive: true, mode: 0o700 });
      await replaceFileDurably(join(this.path, name), bytes, 0o600);
    } catch (err) {
      throw this.#error('write', name, err);
    }
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.path, name), { force: true });
  }

  #error(op: string, name: string, err: unknown): TrustError {
    return new TrustError(TrustErrorCode.STATE_INVALID, `cannot ${op} ${join(this.path, name)}: ${(err as Error).message}`, {
      hint: 'APX_STATE_DIR must be a directory this worker can read and write, kept across restarts',
      cause: err,
    });
  }
}
