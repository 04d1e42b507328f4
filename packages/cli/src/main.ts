#!/usr/bin/env node
import { runCli } from './cli.js';
import { processContext } from './context.js';
import { enableInterruptHandling } from './interrupt.js';

// The process boundary: exit codes are set, never thrown through; no stack traces escape.
process.on('uncaughtException', (err) => {
  process.stderr.write(`ERROR: ${err.message}; this is unexpected: rerun with APX_DEBUG=1 and report it\n`);
  process.exit(1);
});

// The AWS SDK warns on stderr under Node 20 about its releases after January 2027; the
// lockfile pins a release that supports Node 20, and the notice would break the one-line
// error contract. This is the SDK's own switch; a value set by the user wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Commands that write files take over Ctrl-C and SIGTERM while they do (interrupt.ts): all or none.
enableInterruptHandling((line) => process.stderr.write(`${line}\n`));

runCli(process.argv.slice(2), processContext()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ERROR: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
