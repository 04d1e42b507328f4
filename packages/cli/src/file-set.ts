import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileError } from '@apx/core/os-error';
import { SignError, SignErrorCode } from '@apx/sign';
import type { CliContext } from './context.js';
import { armInterrupts, completeBeforeExit, testPause, trackTemp } from './interrupt.js';
import { resolvePath } from './io.js';

/** One file of a set: its path as the user named it (relative to the working directory) and its bytes. */
export interface PlannedFile {
  path: string;
  data: string | Uint8Array;
  /** Renamed into place after every other file of the set: the artifact, which readers look for first. */
  last?: boolean;
  /** Flag that named the path, for messages (--out, --output-signature...). */
  setting?: string;
  /** What the file is, for messages (`signature file a-dir is a directory`); default `file`. */
  what?: string;
}

/** Temporary files of apx: `.<name>.apx-<pid>-<hex>.tmp`, so a later run can tell whose they are. */
const TEMP = /^\..+\.apx-(\d+)-[0-9a-f]{12}\.tmp$/;

/**
 * Writes several files all or none: every file goes to a temporary name in its directory and is
 * fsynced; only once all are written are they renamed into place, the `last` ones (the artifact)
 * after the others, so no `.sig` ever stands beside a missing `.wasm`; then `remove` (a stale
 * `.pem`) is deleted. A failure or a signal (SIGINT, SIGTERM) before the renames leaves the
 * previous files untouched and removes every temporary file; a signal during the renames lets
 * them finish first (interrupt.ts). Temporary files an earlier, killed run left in these
 * directories are removed first.
 */
export async function writeFileSet(ctx: CliContext, files: PlannedFile[], remove: string[] = []): Promise<void> {
  armInterrupts();
  const dirs = new Set(files.map((f) => dirname(resolvePath(ctx, f.path))));
  for (const dir of dirs) await removeStaleTemps(dir);
  const staged: Array<{ file: PlannedFile; temp: string; target: string; untrack: () => void }> = [];
  try {
    for (const file of files) {
      const target = resolvePath(ctx, file.path);
      const temp = join(dirname(target), `.${basename(target)}.apx-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
      staged.push({ file, temp, target, untrack: trackTemp(temp) });
    }
    // Written and fsynced at once (the fsyncs overlap instead of queueing); every write has
    // settled before any is renamed, or before the temporary files are removed on failure.
    const written = await Promise.allSettled(staged.map((s) => writeTemp(ctx, s.file, s.temp)));
    const failed = written.find((w) => w.status === 'rejected');
    if (failed) throw failed.reason;
    await testPause(ctx, 'write:temps-written');
    const ordered = [...staged.filter((s) => !s.file.last), ...staged.filter((s) => s.file.last)];
    await completeBeforeExit(async () => {
      let first = true;
      for (const s of ordered) {
        await rename(s.temp, s.target).catch((err: unknown) => {
          throw describe(ctx, s.file, err);
        });
        s.untrack();
        if (first) await testPause(ctx, 'write:committing');
        first = false;
      }
      for (const path of remove) await rm(resolvePath(ctx, path), { force: true });
    });
  } finally {
    for (const s of staged) {
      await unlink(s.temp).catch(() => undefined);
      s.untrack();
    }
  }
}

async function writeTemp(ctx: CliContext, file: PlannedFile, temp: string): Promise<void> {
  try {
    await mkdir(dirname(temp), { recursive: true });
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(file.data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw describe(ctx, file, err);
  }
}

function describe(ctx: CliContext, file: PlannedFile, err: unknown): Error {
  const clear = fileError(err, {
    what: file.what ?? 'file',
    path: file.path,
    cwd: ctx.cwd,
    ...(file.setting ? { setting: file.setting } : {}),
    expect: 'file',
    access: 'write',
  });
  if (clear) return clear;
  return new SignError(SignErrorCode.IO_FAILED, `cannot write ${file.path}: ${(err as Error).message}`, {
    hint: 'check that the directory exists and is writable',
    cause: err,
  });
}

/** Removes temporary files of apx runs that no longer exist (killed, or crashed mid-write). */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(TEMP.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    await unlink(join(dir, name)).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
