import { parseArgs } from 'node:util';
import type { CliContext } from './context.js';

export interface FlagSpec {
  name: string;
  type: 'string' | 'boolean';
  /** Shown in --help; say what it does and its default. */
  description: string;
  /** Placeholder for the value in --help (string flags). */
  value?: string;
  short?: string;
  multiple?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** The synopsis after `apx <name> `, e.g. `--key KEY [--bundle FILE] BLOB`. */
  usage: string;
  /** Longer text for --help: what it does, what it writes, compatibility notes. */
  details?: string;
  flags: FlagSpec[];
  /** Bounds on positional arguments. */
  positionals: { min: number; max: number; names: string };
  run(ctx: CliContext, args: ParsedArgs): Promise<number>;
  /**
   * A command group (`apx trust approve ...`): the first argument names one of these, whose
   * name is `<group> <subcommand>`; it then parses the rest and has its own --help.
   */
  subcommands?: readonly CommandSpec[];
  /**
   * Exit code for a usage mistake (default 2). Commands that stand in for cosign's use 1,
   * as cosign exits 1 for every failure and scripts written for it test for that.
   */
  usageExitCode?: number;
}

export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** A mistake in how the command was called: exit 2, one line, pointing at --help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * The command that runs for `apx <name> ARGS`: a group's subcommand when ARGS starts with
 * one (with ARGS after it), else the command itself (a group's own --help lists its subcommands).
 */
export function resolveSubcommand(spec: CommandSpec, argv: string[]): { command: CommandSpec; argv: string[] } {
  const [first, ...rest] = argv;
  if (!spec.subcommands || first === undefined || first.startsWith('-')) return { command: spec, argv };
  const sub = spec.subcommands.find((c) => c.name === `${spec.name} ${first}`);
  if (!sub) {
    const names = spec.subcommands.map((c) => c.name.slice(spec.name.length + 1)).join(', ');
    throw new UsageError(`unknown subcommand ${spec.name} ${first}; subcommands: ${names}`);
  }
  return { command: sub, argv: rest };
}

export function parseCommandArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const f of spec.flags) {
    options[f.name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs messages are long and mention internals; keep the first sentence.
    const message = (err as Error).message.split('. ')[0]?.replace(/\.$/, '') ?? 'invalid arguments';
    throw new UsageError(message);
  }
  const { min, max, names } = spec.positionals;
  const count = parsed.positionals.length;
  if (count < min) throw new UsageError(`missing ${names}`);
  if (count > max) throw new UsageError(`unexpected argument: ${parsed.positionals[max] ?? ''}`);
  return { flags: parsed.values as ParsedArgs['flags'], positionals: parsed.positionals };
}

export function flagString(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} needs a value`);
  return v;
}

export function flagBool(args: ParsedArgs, name: string): boolean {
  return args.flags[name] === true;
}

export function renderCommandHelp(spec: CommandSpec): string {
  const lines = [`Usage: apx ${spec.name} ${spec.usage}`, '', spec.summary];
  if (spec.details) lines.push('', spec.details.trim());
  const flags = [...spec.flags, { name: 'help', type: 'boolean' as const, description: 'Show this help.', short: 'h' }];
  lines.push('', 'Flags:');
  const labels = flags.map(
    (f) => `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`,
  );
  const width = Math.max(...labels.map((l) => l.length)) + 2;
  flags.forEach((f, i) => {
    lines.push(`  ${(labels[i] ?? '').padEnd(width)}${f.description}`);
  });
  return `${lines.join('\n')}\n`;
}
