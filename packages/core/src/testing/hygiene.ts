// Test hygiene: what a test changes outside itself is put back. Temporary directories are
// removed and environment variables restored, whether the test passed or not. Exported as
// `@apx/core/testing/hygiene`; tests only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
let hooked = false;

/**
 * A new temporary directory, removed (with everything in it) when the test process exits;
 * node:test runs each test file in its own process. Tests that want it gone sooner remove it
 * themselves as well.
 */
export function tempDir(prefix = 'apx-test-'): string {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    });
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/**
 * Sets (or, for undefined, removes) environment variables and returns the function that
 * restores each to its previous value: `t.after(setEnv({...}))`, or call it in a finally.
 */
export function setEnv(vars: Record<string, string | undefined>): () => void {
  const previous = Object.keys(vars).map((name) => [name, process.env[name]] as const);
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    for (const [name, value] of previous) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/**
 * Records what escapes every caller (unhandled rejections, uncaught exceptions) while a
 * suite runs: `const escaped = recordEscapes(before, after)`, then `escaped` is [] if nothing did.
 * Node would otherwise end the test process, or the failure would surface in another test.
 */
export function recordEscapes(before: (fn: () => void) => void, after: (fn: () => void) => void): unknown[] {
  const escaped: unknown[] = [];
  const record = (err: unknown) => escaped.push(err);
  before(() => {
    process.on('unhandledRejection', record);
    process.on('uncaughtException', record);
  });
  after(() => {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
  });
  return escaped;
}
