import { createRequire } from 'node:module';
import { type CommandSpec, parseCommandArgs, renderCommandHelp, resolveSubcommand, UsageError } from './command.js';
import { COMMANDS } from './commands/index.js';
import type { CliContext } from './context.js';
import { disarmInterrupts } from './interrupt.js';
import { closeSigners } from './open-signers.js';

// This module and those above stay free of APX's libraries: `apx --version` and `apx --help`
// load nothing else, and `apx <command>` loads only that command's module (commands/index.ts).

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

function renderHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'apx: compile API policies to WebAssembly, sign them, and verify them before they run.',
    '',
    'Usage: apx <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Run "apx <command> --help" for the flags of a command.',
    'Environment: COSIGN_PASSWORD (password of private key files; may be empty);',
    '  APX_AUDIT_LOG (audit trail of signing; default $XDG_CONFIG_HOME/apx/audit.log, else ~/.config/apx/audit.log).',
    '',
  ].join('\n');
}

/**
 * Runs one `apx` invocation and returns its exit code: 0 success, 1 failure, 2 usage.
 * Every failure is one line on stderr, `ERROR: <what is wrong>; <how to fix it>`, with no
 * stack trace (APX_DEBUG=1 adds it, for developers).
 */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    ctx.stdout.write(topic ? renderCommandHelp(await topic.load()) : renderHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    ctx.stdout.write(`apx ${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    ctx.stderr.write(`ERROR: unknown command "${name}"; run "apx --help" for the list of commands\n`);
    return 2;
  }
  const group = await entry.load();
  let resolved: ReturnType<typeof resolveSubcommand>;
  try {
    resolved = resolveSubcommand(group, rest);
  } catch (err) {
    return await reportError(ctx, group, err);
  }
  const { command, argv: args } = resolved;
  if (args.includes('--help') || args.includes('-h')) {
    ctx.stdout.write(renderCommandHelp(command));
    return 0;
  }
  try {
    return await command.run(ctx, parseCommandArgs(command, args));
  } catch (err) {
    return await reportError(ctx, command, err);
  } finally {
    await closeSigners(ctx);
    disarmInterrupts();
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

async function reportError(ctx: CliContext, command: CommandSpec, err: unknown): Promise<number> {
  if (ctx.env.APX_DEBUG === '1' && err instanceof Error && err.stack) ctx.stderr.write(`${err.stack}\n`);
  if (err instanceof UsageError) {
    ctx.stderr.write(`ERROR: ${oneLine(err.message)}; run "apx ${command.name} --help" for usage\n`);
    return command.usageExitCode ?? 2;
  }
  // @apx/core is loaded by then whenever the error is one of APX's (ApxError is its class).
  const { isApxError } = await import('@apx/core');
  // Several problems found at once (every bad setting of a worker): one line each.
  const problems = err instanceof AggregateError && err.errors.length > 0 && err.errors.every(isApxError) ? err.errors : [err];
  if (problems.every(isApxError)) {
    for (const p of problems) ctx.stderr.write(`ERROR: ${oneLine(p.message)}${p.hint ? `; ${oneLine(p.hint)}` : ''}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  ctx.stderr.write(`ERROR: ${oneLine(message)}; this is unexpected: rerun with APX_DEBUG=1 and report it\n`);
  return 1;
}
