// The apx command as a library, for tests and embedding.
export { runCli } from './cli.js';
export { COMMANDS, type CommandEntry, loadCommands } from './commands/index.js';
export type { CliContext } from './context.js';
