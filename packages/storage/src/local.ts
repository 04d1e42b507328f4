import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { compareExisting, swapConflict } from './conflict.js';
import { replaceFileDurably } from './durable-file.js';
import { StorageError, StorageErrorCode } from './error.js';
import { readCapped } from './limits.js';
import { withFileLock } from './local-lock.js';
import { checkListPrefix, checkObjectName } from './names.js';
import type { ArtifactStore, GetOptions, ListOptions, PutOptions, PutOutcome, SwapOptions, VersionedObject } from './store.js';
import { DEFAULT_MAX_BYTES } from './store.js';

export interface LocalStoreOptions {
  /** The directory; created on the first put. */
  root: string;
  /** Display URL for messages (defaults to `file://<root>`). */
  url?: string;
  /** How long a swap waits for another writer's lock before CONFLICT (default 5 s). */
  lockWaitMs?: number;
}

/**
 * A directory of artifacts: the embedded default `./artifacts`. Writes go to a temporary
 * file in the target directory, are fsynced, then renamed (overwrite) or hard-linked
 * (create-only: link(2) fails if the name exists, so of two concurrent writers exactly one
 * wins). Readers therefore never see a partial file.
 *
 * `swap` is lock-and-rename: a lock file beside the target (local-lock.ts), compare, write a
 * temporary file, fsync, rename over, fsync the directory, unlock. Its token is the sha256
 * of the content. Content-as-version admits ABA (A → B → A looks unchanged), which is no
 * concern for the trust metadata swap exists for: TUF versions only increase, so a file's
 * content never returns to an earlier value.
 */
export class LocalStore implements ArtifactStore {
  readonly url: string;
  readonly #root: string;
  readonly #lockWaitMs: number | undefined;

  constructor(options: LocalStoreOptions) {
    this.#root = options.root;
    this.#lockWaitMs = options.lockWaitMs;
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

  async getVersioned(name: string, options: GetOptions = {}): Promise<VersionedObject | undefined> {
    const bytes = await this.get(name, options);
    return bytes === undefined ? undefined : { bytes, token: sha256(bytes) };
  }

  async swap(name: string, bytes: Uint8Array, expected: string | null, options: SwapOptions = {}): Promise<string> {
    const path = this.#path(name);
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw this.#ioError('write', name, err);
    }
    // A dot name: list() skips it, like temporary files.
    const lock = {
      path: join(dir, `.${basename(path)}.lock`),
      name,
      storeUrl: this.url,
      signal: options.signal,
      ...(this.#lockWaitMs === undefined ? {} : { waitMs: this.#lockWaitMs }),
    };
    return withFileLock(lock, async () => {
      const current = await this.#contentToken(path, name);
      if (expected === null ? current !== undefined : current !== expected) throw swapConflict(this.url, name, expected);
      options.signal?.throwIfAborted();
      try {
        await replaceFileDurably(path, bytes);
      } catch (err) {
        throw this.#ioError('write', name, err);
      }
      return sha256(bytes);
    }).catch((err: unknown) => {
      // The caller's abort (its reason, as is) and our own errors pass through.
      if (err instanceof StorageError || options.signal?.aborted) throw err;
      throw this.#ioError('write', name, err);
    });
  }

  /** The current content's token, hashed while streaming (no size cap: nothing is kept). */
  async #contentToken(path: string, name: string): Promise<string | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw this.#ioError('read', name, err);
    }
    try {
      if (!(await handle.stat()).isFile()) return undefined;
      const hash = createHash('sha256');
      for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
      return hash.digest('hex');
    } finally {
      await handle.close();
    }
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

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
