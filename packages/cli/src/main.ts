#!/usr/bin/env node
import { runCli } from './cli.js';
import { processContext } from './context.js';

// The process boundary: exit codes are set, never thrown through; no stack traces escape.
process.on('uncaughtException', (err) => {
  process.stderr.write(`ERROR: ${err.message}; this is unexpected: rerun with APX_DEBUG=1 and report it\n`);
  process.exit(1);
});

// The AWS SDK warns on every start under Node 20 about its releases after January 2027;
// the lockfile pins a release that supports Node 20, so the notice is noise for users.
const defaultWarning = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'NodeVersionSupportWarning') return;
  for (const listener of defaultWarning) listener(warning);
});

runCli(process.argv.slice(2), processContext()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ERROR: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
