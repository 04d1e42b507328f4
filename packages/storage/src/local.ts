import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { compareExisting } from './conflict.js';
import { StorageError, StorageErrorCode } from './error.js';
import { readCapped } from './limits.js';
import { checkListPrefix, checkObjectName } from './names.js';
import type { ArtifactStore, GetOptions, ListOptions, PutOptions, PutOutcome } from './store.js';
import { DEFAULT_MAX_BYTES } from './store.js';

export interface LocalStoreOptions {
  /** The directory; created on the first put. */
  root: string;
  /** Display URL for messages (defaults to `file://<root>`). */
  url?: string;
}

/**
 * A directory of artifacts: the embedded default `./artifacts`. Writes go to a temporary
 * file in the target directory, are fsynced, then renamed (overwrite) or hard-linked
 * (create-only: link(2) fails if the name exists, so of two concurrent writers exactly one
 * wins). Readers therefore never see a partial file.
 */
export class LocalStore implements ArtifactStore {
  readonly url: string;
  readonly #root: string;

  constructor(options: LocalStoreOptions) {
    this.#root = options.root;
    this.url = options.url ?? `file://${options.root}`;
  }

  #path(name: string): string {
    return join(this.#root, ...checkObjectName(name).split('/'));
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    const path = this.#path(name);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw this.#ioError('read', name, err);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) return undefined;
      // One open file: the size checked is the size of the file read, even if renamed over.
      const stream = handle.createReadStream({ autoClose: false, highWaterMark: 256 * 1024 });
      return await readCapped(
        stream,
        {
          storeUrl: this.url,
          name,
          maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
          expectedLength: stat.size,
          signal: options.signal,
        },
        () => stream.destroy(),
      );
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw this.#ioError('read', name, err);
    } finally {
      await handle.close();
    }
  }

  async put(name: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    const path = this.#path(name);
    const dir = dirname(path);
    const temp = join(dir, `.${randomBytes(8).toString('hex')}.tmp`);
    let placed = false;
    try {
      await mkdir(dir, { recursive: true });
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      options.signal?.throwIfAborted();
      if (!options.ifAbsent) {
        await rename(temp, path);
        placed = true;
        return 'created';
      }
      try {
        await link(temp, path);
        return 'created';
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw this.#ioError('write', name, err);
    } finally {
      if (!placed) await unlink(temp).catch(() => undefined);
    }
    return compareExisting(this, name, bytes);
  }

  async list(prefix = '', _options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw this.#ioError('list', prefix, err);
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue; // temporary files of writes in flight
        const full = join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile()) {
          const name = relative(this.#root, full).split(sep).join('/');
          if (name.startsWith(prefix)) out.push(name);
        }
      }
    };
    await walk(this.#root);
    return out.sort();
  }

  #ioError(op: string, name: string, err: unknown): StorageError {
    return new StorageError(StorageErrorCode.REQUEST_FAILED, `cannot ${op} ${name} in ${this.url}: ${(err as Error).message}`, {
      hint: 'check that the directory exists and that this user may read and write it',
      cause: err,
    });
  }
}
