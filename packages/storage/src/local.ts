import { createHash, randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { compareExisting, swapConflict } from './conflict.js';
import { replaceFileDurably } from './durable-file.js';
import { StorageError, StorageErrorCode } from './error.js';
import { tooLarge, truncated } from './limits.js';
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
 *
 * Only regular files are read. A FIFO, socket, device or directory under an object's name is
 * refused (NOT_A_FILE) without ever being opened for a blocking read: opening a FIFO waits for
 * a writer, and would hold one of libuv's few threads (and the worker's load) forever.
 * Symbolic links are followed wherever they point (Kubernetes ConfigMap and Secret volumes are
 * made of them); the file they reach must be regular, and its bytes are verified like any.
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

  /** The store's directory (absolute when opened by openStore). */
  get root(): string {
    return this.#root;
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    const opened = await this.#openRegular(this.#path(name), name);
    if (!opened) return undefined;
    const { handle, stat: info } = opened;
    try {
      return await this.#readWhole(handle, name, info.size, options);
    } catch (err) {
      if (err instanceof StorageError || options.signal?.aborted) throw err;
      throw this.#ioError('read', name, err);
    } finally {
      // Off the reader's path: the bytes are complete once read, and the descriptor is
      // released right after (nothing is written through it, so closing cannot fail a read).
      handle.close().catch(() => undefined);
    }
  }

  /**
   * The open file's bytes in one buffer, read in place (no chunks to join): one read for a
   * file of any size in the common case. The size checked is the size of the file read, even
   * if the name was renamed over meanwhile; the read asks for one byte more than that size, so
   * a file that grew while read is caught by the same read, and one that shrank by its end.
   */
  async #readWhole(handle: FileHandle, name: string, size: number, options: GetOptions): Promise<Buffer> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (size > maxBytes) throw tooLarge(this.url, name, size, maxBytes);
    let at = 0;
    // The caller's deadline, as the other stores report theirs (readCapped).
    const stop = () => {
      const signal = options.signal;
      if (!signal?.aborted) return;
      if ((signal.reason as Error | undefined)?.name !== 'TimeoutError') throw signal.reason;
      throw new StorageError(StorageErrorCode.UNREACHABLE, `reading ${name} from ${this.url} timed out after ${at} bytes`, {
        hint: 'the store is slow or stalled; retry, or raise the timeout',
      });
    };
    stop();
    // Its own memory (not Node's shared pool): the bytes are handed on to hashing and
    // compilation as they are, and nothing else lives beside them.
    const bytes = Buffer.allocUnsafeSlow(size + 1);
    for (;;) {
      const { bytesRead } = await handle.read(bytes, at, bytes.length - at, at);
      stop();
      if (bytesRead === 0) break;
      at += bytesRead;
      if (at > size)
        throw new StorageError(StorageErrorCode.INTEGRITY, `${name} in ${this.url} grew while it was read`, {
          hint: 'the file was being written; retry once the writer is done (apx publish writes atomically)',
        });
      // A regular file's read stops short only at its end.
      if (at === size) break;
    }
    if (at !== size) throw truncated(this.url, name, at, size);
    return bytes.subarray(0, size);
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

  /**
   * Opens an object for reading if it is a regular file; undefined when it does not exist.
   * The name is judged before the open (stat: never blocks) and the file actually opened is
   * judged again (the name may have been replaced in between); O_NONBLOCK keeps an open of a
   * FIFO swapped in meanwhile from waiting for a writer.
   */
  async #openRegular(path: string, name: string): Promise<{ handle: FileHandle; stat: Stats } | undefined> {
    let handle: FileHandle;
    try {
      const before = await stat(path);
      if (!before.isFile()) throw this.#notAFile(name, before);
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw this.#ioError('read', name, err);
    }
    try {
      const opened = await handle.stat();
      if (!opened.isFile()) throw this.#notAFile(name, opened);
      return { handle, stat: opened };
    } catch (err) {
      await handle.close();
      if (err instanceof StorageError) throw err;
      throw this.#ioError('read', name, err);
    }
  }

  #notAFile(name: string, info: Stats): StorageError {
    const kind = info.isFIFO()
      ? 'a named pipe (FIFO)'
      : info.isSocket()
        ? 'a socket'
        : info.isCharacterDevice() || info.isBlockDevice()
          ? 'a device'
          : info.isDirectory()
            ? 'a directory'
            : 'not a regular file';
    return new StorageError(StorageErrorCode.NOT_A_FILE, `not a regular file: ${name} in ${this.url} is ${kind}`, {
      hint: 'a store holds regular files only (symbolic links to regular files are followed); remove or replace it',
    });
  }

  /** The current content's token, hashed while streaming (no size cap: nothing is kept). */
  async #contentToken(path: string, name: string): Promise<string | undefined> {
    const opened = await this.#openRegular(path, name);
    if (!opened) return undefined;
    const { handle } = opened;
    try {
      const hash = createHash('sha256');
      for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
      return hash.digest('hex');
    } finally {
      await handle.close();
    }
  }

  /**
   * Names under the directory, sorted. Directories are walked (symbolic links to directories
   * are not: no loops); every other entry is listed, special files included, so that reading
   * one reports it (NOT_A_FILE) instead of it being silently invisible.
   */
  async list(prefix = '', options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      options.signal?.throwIfAborted();
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
        else {
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
