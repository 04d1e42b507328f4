// The lock a LocalStore swap holds while it compares and replaces one file. A file system
// has no compare-and-rename, so writers of one name serialize on a lock file created with
// O_CREAT|O_EXCL (`wx`), which exactly one process can create. Used across processes and
// within one (each swap takes the lock, whoever else is waiting).
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { StorageError, StorageErrorCode } from './error.js';

/** A lock older than this is left by a crashed or hung writer: a swap takes milliseconds. */
export const STALE_LOCK_MS = 30_000;
/** How long a swap waits for a held lock before giving up with CONFLICT. */
export const LOCK_WAIT_MS = 5_000;

/** What a lock file holds: who took it and when, and a nonce so only its owner removes it. */
export interface LockOwner {
  pid: number;
  hostname: string;
  /** ISO 8601. */
  time: string;
  nonce: string;
}

export interface FileLockOptions {
  /** The lock file's path, beside the target. */
  path: string;
  /** The object's name and the store URL, for messages. */
  name: string;
  storeUrl: string;
  waitMs?: number;
  staleMs?: number;
  signal?: AbortSignal | undefined;
  /** Injected for tests. */
  now?: () => number;
}

/** Takes the lock, runs `work`, and always removes the lock afterwards. */
export async function withFileLock<T>(options: FileLockOptions, work: () => Promise<T>): Promise<T> {
  const owner = await acquire(options);
  try {
    return await work();
  } finally {
    await release(options.path, owner);
  }
}

async function acquire(o: FileLockOptions): Promise<LockOwner> {
  const now = o.now ?? Date.now;
  const waitUntil = now() + (o.waitMs ?? LOCK_WAIT_MS);
  let holder: LockOwner | undefined;
  for (let attempt = 0; ; attempt++) {
    o.signal?.throwIfAborted();
    const owner: LockOwner = { pid: process.pid, hostname: hostname(), time: new Date(now()).toISOString(), nonce: nonce() };
    try {
      const handle = await open(o.path, 'wx', 0o644);
      try {
        await handle.writeFile(JSON.stringify(owner));
      } finally {
        await handle.close();
      }
      return owner;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    holder = await readOwner(o.path);
    if (holder === undefined) continue; // released meanwhile
    if (isStale(holder, now(), o.staleMs ?? STALE_LOCK_MS)) {
      await breakLock(o.path, holder);
      continue;
    }
    if (now() >= waitUntil) break;
    // Short, jittered sleeps: a swap holds the lock for milliseconds.
    await sleep(Math.min(10 + attempt * 5, 50) + Math.random() * 10);
  }
  throw new StorageError(
    StorageErrorCode.CONFLICT,
    `${o.name} in ${o.storeUrl} is locked by another writer (pid ${holder?.pid ?? '?'} since ${holder?.time ?? '?'}) on host ${holder?.hostname || '?'}`,
    {
      hint: `re-read ${o.name} and retry; if no writer is running, the lock file ${o.path} is stale and is broken after ${(o.staleMs ?? STALE_LOCK_MS) / 1000} s`,
    },
  );
}

/**
 * A lock is stale when its owner is a process on this host that no longer exists, or when
 * it is older than `staleMs` (its owner crashed on another host sharing the directory, or
 * hung). A lock file still being written (empty or partial) is judged by its age only.
 */
export function isStale(owner: LockOwner, nowMs: number, staleMs: number): boolean {
  const since = Date.parse(owner.time);
  if (Number.isFinite(since) && nowMs - since > staleMs) return true;
  return owner.hostname === hostname() && owner.pid > 0 && !alive(owner.pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Two writers may find the same stale lock; only one may remove it, and neither may remove
 * a fresh lock taken meanwhile. So the lock is renamed aside (atomic: one renamer wins) and
 * the renamed file checked: if it is not the stale lock judged (another writer broke that
 * one and took a new lock), the new lock is put back with link(2), which never overwrites.
 */
async function breakLock(path: string, stale: LockOwner): Promise<void> {
  const aside = `${path}.${nonce()}.broken`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const taken = await readOwner(aside);
    if (taken?.nonce !== stale.nonce) await link(aside, path).catch(() => undefined);
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

/** Removes the lock only if it is still ours (a stale-lock breaker may have taken it). */
async function release(path: string, owner: LockOwner): Promise<void> {
  const current = await readOwner(path);
  if (current?.nonce === owner.nonce) await unlink(path).catch(() => undefined);
}

/** The lock's owner; undefined if there is no lock; a placeholder while it is being written. */
export async function readOwner(path: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (
      typeof o.pid === 'number' &&
      typeof o.hostname === 'string' &&
      typeof o.time === 'string' &&
      typeof o.nonce === 'string'
    ) {
      return o as LockOwner;
    }
  } catch {
    // still being written by its creator, or left empty by a crash right after creating it
  }
  // No owner to ask: the file's age decides, and its identity stands in for the nonce.
  try {
    const s = await stat(path);
    return { pid: 0, hostname: '', time: s.mtime.toISOString(), nonce: `partial:${s.ino}:${s.mtimeMs}:${text}` };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const nonce = () => randomBytes(8).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
