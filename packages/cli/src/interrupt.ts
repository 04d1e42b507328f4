import { unlinkSync } from 'node:fs';
import type { CliContext } from './context.js';

/**
 * Ctrl-C (SIGINT) and SIGTERM while a command writes files. Node's default is to die on the
 * spot, which left a `.sig` and a bundle without their `.wasm` and a `.tmp` file behind. Here:
 *   - temporary files being written are registered and removed before the process exits;
 *   - the short step that renames a complete set of files into place (and a publish) runs to
 *     its end first (`completeBeforeExit`), then the process exits;
 *   - a second signal exits at once (temporaries still removed).
 * The exit status is 128 + the signal number (130 for SIGINT), as a shell reports it.
 *
 * Only the `apx` process installs handlers (main.ts calls enableInterruptHandling): library
 * and in-process use (runCli in tests, npm start) keep the host's own signal handling. The
 * handlers are armed by the commands that write (armInterrupts) and removed when the command
 * ends (disarmInterrupts), so the worker's own graceful shutdown is never affected.
 */

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type HandledSignal = (typeof SIGNALS)[number];
const NUMBERS: Record<HandledSignal, number> = { SIGINT: 2, SIGTERM: 15 };

const state = {
  enabled: false,
  armed: false,
  received: undefined as HandledSignal | undefined,
  deferring: 0,
  temps: new Set<string>(),
  wakers: new Set<() => void>(),
  controller: new AbortController(),
  write: (_line: string): void => undefined,
};

const listeners = new Map<HandledSignal, () => void>();

/** Called once by the `apx` process (main.ts): commands that write may then take over SIGINT and SIGTERM. */
export function enableInterruptHandling(writeLine: (line: string) => void): void {
  state.enabled = true;
  state.write = writeLine;
}

/** Takes over SIGINT and SIGTERM for the rest of this command (a no-op unless enabled). */
export function armInterrupts(): void {
  if (!state.enabled || state.armed) return;
  state.armed = true;
  for (const signal of SIGNALS) {
    const listener = () => onSignal(signal);
    listeners.set(signal, listener);
    process.on(signal, listener);
  }
}

/** Gives SIGINT and SIGTERM back to their previous handling (runCli calls it when a command ends). */
export function disarmInterrupts(): void {
  for (const [signal, listener] of listeners) process.off(signal, listener);
  listeners.clear();
  state.armed = false;
}

/** Aborted when a signal arrives: operations that can stop cleanly (a publish's first upload) listen to it. */
export function interruptSignal(): AbortSignal {
  return state.controller.signal;
}

/** Registers a temporary file to remove if the process is interrupted; call the result once it is gone or renamed. */
export function trackTemp(path: string): () => void {
  state.temps.add(path);
  return () => {
    state.temps.delete(path);
  };
}

/**
 * Runs `fn` to its end even if a signal arrives meanwhile (the renames that put a complete set
 * of files in place; a publish once its first object is stored), then exits if one did.
 */
export async function completeBeforeExit<T>(fn: () => Promise<T>): Promise<T> {
  state.deferring++;
  try {
    return await fn();
  } finally {
    state.deferring--;
    if (state.received !== undefined && state.deferring === 0) exitNow(state.received);
  }
}

/**
 * Test-only hook (documented in docs/operations.md as such): when APX_TEST_PAUSE_AT names this
 * step, print `APX_TEST_PAUSED <step>` on stderr and wait for a signal, so that a test can
 * interrupt the command at a known point without timing. Inert unless the variable names the step.
 */
export async function testPause(ctx: CliContext, step: string): Promise<void> {
  if (ctx.env.APX_TEST_PAUSE_AT !== step) return;
  ctx.stderr.write(`APX_TEST_PAUSED ${step}\n`);
  if (!state.armed || state.received !== undefined) return;
  await new Promise<void>((resolve) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const wake = () => {
      clearInterval(keepAlive);
      state.wakers.delete(wake);
      resolve();
    };
    state.wakers.add(wake);
  });
}

function onSignal(signal: HandledSignal): void {
  if (state.received !== undefined) exitNow(signal);
  state.received = signal;
  state.controller.abort(new Error(`interrupted by ${signal}`));
  for (const wake of [...state.wakers]) wake();
  if (state.deferring === 0) exitNow(signal);
}

function exitNow(signal: HandledSignal): never {
  for (const temp of state.temps) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed into place or never created
    }
  }
  state.temps.clear();
  state.write(
    `ERROR: interrupted by ${signal}; every set of files was written completely or not at all and no temporary file is left: check the output and run the command again`,
  );
  process.exit(128 + NUMBERS[signal]);
}
