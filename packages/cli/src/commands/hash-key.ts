import { createHash } from 'node:crypto';
import { type CommandSpec, flagBool, UsageError } from '../command.js';
import { info } from '../context.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput } from '../io.js';
import { JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { promptHidden } from '../password.js';

/**
 * `apx hash-key`: the `sha256` of an API key for a policy's `spec.auth.apiKeys.keys[]`: lowercase
 * hex SHA-256 of the key's UTF-8 bytes, exactly as the worker hashes the header value it receives.
 * The key is read without echo from a terminal, or from stdin; never from an argument (shell
 * history). A header value never carries a line break, and servers trim spaces around it, so:
 * exactly one trailing "\n" (or "\r\n", what `echo key |` adds) is removed with a warning saying
 * so; any other leading or trailing whitespace is refused, since such a key could never match.
 * --raw hashes the bytes as given.
 */
export const hashKeyCommand: CommandSpec = {
  name: 'hash-key',
  summary: "Hash an API key for a policy's spec.auth.apiKeys (SHA-256 hex), read without echo or from stdin.",
  usage: '[--raw] [--json]   (the key on stdin, or typed at the prompt)',
  details: `Prints the lowercase hex SHA-256 of the key's UTF-8 bytes: the value of sha256 in
spec.auth.apiKeys.keys[] (docs/policy-language.md), the hash workers compare with the key in the
request header. On a terminal the key is asked twice, without echo; otherwise it is read from
stdin (printf %s "$KEY" | apx hash-key). The key is never an argument (it would stay in shell
history) and never printed or logged. One trailing newline (what echo adds) is removed, with a
WARNING that says so; other whitespace around the key is refused: HTTP servers trim it, so such
a key would be denied "invalid API key" on every request. --raw hashes the input byte for byte.`,
  flags: [
    { name: 'raw', type: 'boolean', description: 'Hash the input exactly as read: remove and refuse nothing.' },
    JSON_OUTPUT_FLAG,
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    let key: string;
    const fromTerminal = ctx.stdin.isTTY === true && ctx.stderr.isTTY === true;
    if (fromTerminal) {
      key = await promptHidden(ctx, 'Enter API key: ');
      const again = await promptHidden(ctx, 'Enter API key again: ');
      if (again !== key)
        throw new CliError(CliErrorCode.INPUT_REFUSED, 'the two API keys differ', { hint: 'run apx hash-key again' });
    } else {
      if (ctx.stdin.isTTY === true) throw new UsageError('no terminal to ask on: pipe the key on stdin');
      key = (await readInput(ctx, '-', 'stdin', 'pipe the key on stdin')).toString('utf8');
    }
    if (!flagBool(args, 'raw')) key = checkKey(ctx, key);
    if (key.length === 0) {
      throw new CliError(CliErrorCode.INPUT_REFUSED, 'the API key is empty', {
        hint: 'type the key at the prompt, or pipe it: printf %s "$KEY" | apx hash-key',
      });
    }
    const sha256 = createHash('sha256').update(key, 'utf8').digest('hex');
    if (flagBool(args, 'json')) writeJsonResult(ctx, args, { sha256 });
    else ctx.stdout.write(`${sha256}\n`);
    info(ctx, 'Use it as sha256 of an entry of spec.auth.apiKeys.keys[] (the key itself never goes in the policy).');
    return 0;
  },
};

function checkKey(ctx: Parameters<CommandSpec['run']>[0], input: string): string {
  let key = input;
  const ending = key.endsWith('\r\n') ? '\\r\\n' : key.endsWith('\n') ? '\\n' : undefined;
  if (ending) key = key.slice(0, ending === '\\r\\n' ? -2 : -1);
  if (key !== key.trim()) {
    throw new CliError(
      CliErrorCode.INPUT_REFUSED,
      'the API key has leading or trailing whitespace (or more than one line ending)',
      {
        hint: 'HTTP servers trim it from the header, so this key would never match: remove it, or pass --raw to hash it as given',
      },
    );
  }
  if (/[\r\n]/.test(key)) {
    throw new CliError(CliErrorCode.INPUT_REFUSED, 'the API key spans several lines', {
      hint: 'an HTTP header value holds one line: pipe one key (printf %s "$KEY" | apx hash-key)',
    });
  }
  // Said only once the key is accepted: a refusal stays one line.
  if (ending) {
    info(
      ctx,
      `WARNING: removed one trailing ${ending} from the key (echo adds one); use printf %s, or --raw to hash it as given`,
    );
  }
  return key;
}
