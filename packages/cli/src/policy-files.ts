import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { CliContext } from './context.js';

/** Directories a search for policy or test files never enters. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);

/** A file found for a command: where it is, and how to name it to the user (as given, or relative to cwd). */
export interface FoundFile {
  path: string;
  shown: string;
}

/** Every file under `dir` (recursively, skipping dot directories, node_modules and dist) that `wanted` accepts, sorted. */
export async function findFiles(dir: string, wanted: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!e.name.startsWith('.') && !SKIPPED_DIRS.has(e.name)) await walk(join(d, e.name));
      } else if (e.isFile() && wanted(e.name)) out.push(join(d, e.name));
    }
  };
  await walk(dir);
  return out.sort();
}

/** The kind of a command-line path: a directory, a file, or nothing. */
export async function pathKind(path: string): Promise<'dir' | 'file' | 'missing'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
}

/** How a found file is shown: relative to the working directory when inside it. */
export function shownPath(ctx: CliContext, path: string): string {
  const rel = relative(ctx.cwd, resolve(ctx.cwd, path));
  return rel.startsWith('..') || rel === '' ? path : rel;
}
