import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareSemver, isPolicyId, isSemver } from '@apx/core';
import { replaceFileDurably } from '@apx/storage';
import { WorkerError, WorkerErrorCode } from './error.js';

/** The file in APX_STATE_DIR that holds the rollback floors. */
export const FLOORS_FILE = 'floors.json';

/**
 * Rollback floors: the highest version verified per policy. Core refuses anything below a
 * floor; this class only remembers them. With a state directory (APX_STATE_DIR, required in
 * staging and production) they survive restarts: read once at start, and written atomically
 * (temp file, fsync, rename, fsync of the directory) before a load is reported, so a crash at
 * any point leaves the old file or the new one, never a torn one. Without one (development)
 * they live in memory.
 */
export class RollbackFloors {
  private readonly floors: Map<string, string>;
  private readonly dir: string | undefined;
  /** Writes are serialized: the file always holds a superset of what an earlier write held. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(dir: string | undefined, floors: Map<string, string>) {
    this.dir = dir;
    this.floors = floors;
  }

  static inMemory(): RollbackFloors {
    return new RollbackFloors(undefined, new Map());
  }

  /** Reads `<dir>/floors.json` (absent = no floors yet); a malformed file stops the worker. */
  static async open(dir: string): Promise<RollbackFloors> {
    const path = join(dir, FLOORS_FILE);
    let text: string;
    try {
      await mkdir(dir, { recursive: true });
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new RollbackFloors(dir, new Map());
      throw new WorkerError(WorkerErrorCode.STATE_UNAVAILABLE, `cannot read rollback floors ${path}: ${(err as Error).message}`, {
        hint: 'make APX_STATE_DIR a directory the worker can read and write',
        cause: err,
      });
    }
    const refuse = (why: string) =>
      new WorkerError(WorkerErrorCode.STATE_UNAVAILABLE, `invalid rollback floors ${path}: ${why}`, {
        hint: 'restore the file from a backup; deleting it forgets every floor and re-opens rollback',
      });
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw refuse('not JSON');
    }
    const floors = (doc as { floors?: unknown } | null)?.floors;
    if (typeof floors !== 'object' || floors === null || Array.isArray(floors)) throw refuse('expected {"floors": {...}}');
    const map = new Map<string, string>();
    for (const [policyId, version] of Object.entries(floors)) {
      if (!isPolicyId(policyId) || typeof version !== 'string' || !isSemver(version)) {
        throw refuse(`entry ${JSON.stringify(policyId)} is not a policy id with a version`);
      }
      map.set(policyId, version);
    }
    return new RollbackFloors(dir, map);
  }

  get(policyId: string): string | undefined {
    return this.floors.get(policyId);
  }

  /** Raises the policy's floor to `version` if it is higher, and persists it before returning. */
  async raise(policyId: string, version: string): Promise<void> {
    const floor = this.floors.get(policyId);
    if (floor !== undefined && compareSemver(version, floor) <= 0) return;
    this.floors.set(policyId, version);
    if (this.dir === undefined) return;
    const dir = this.dir;
    const next = this.writing.then(() => writeAtomically(dir, FLOORS_FILE, this.document()));
    this.writing = next.catch(() => undefined);
    await next;
  }

  private document(): string {
    const floors = Object.fromEntries([...this.floors].sort(([a], [b]) => (a < b ? -1 : 1)));
    return `${JSON.stringify({ floors }, null, 2)}\n`;
  }
}

async function writeAtomically(dir: string, name: string, text: string): Promise<void> {
  const path = join(dir, name);
  try {
    await replaceFileDurably(path, text, 0o600);
  } catch (err) {
    throw new WorkerError(
      WorkerErrorCode.STATE_UNAVAILABLE,
      `cannot record rollback floors in ${path}: ${(err as Error).message}`,
      {
        hint: 'make APX_STATE_DIR writable by the worker (and check free space)',
        cause: err,
      },
    );
  }
}
