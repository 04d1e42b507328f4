// apx trust: the TUF trust repository (approvals, revocations, key rotation, freshness).

import { type CommandSpec, renderCommandHelp } from '../../command.js';
import { trustApproveCommand } from './approve.js';
import { trustInitCommand } from './init.js';
import { trustPublishCommand } from './publish.js';
import { trustRenewCommand } from './renew.js';
import { trustRequireCommand } from './require.js';
import { trustRevokeCommand } from './revoke.js';
import { trustRotateCommand } from './rotate.js';
import { trustSignCommand } from './sign.js';
import { trustSignerCommand } from './signer.js';
import { trustStatusCommand } from './status.js';
import { trustVexCommand } from './vex.js';

const SUBCOMMANDS: readonly CommandSpec[] = [
  trustInitCommand,
  trustApproveCommand,
  trustRevokeCommand,
  trustSignerCommand,
  trustRequireCommand,
  trustVexCommand,
  trustRotateCommand,
  trustRenewCommand,
  trustSignCommand,
  trustPublishCommand,
  trustStatusCommand,
];

const width = Math.max(...SUBCOMMANDS.map((c) => c.name.length)) + 2;

export const trustCommand: CommandSpec = {
  name: 'trust',
  summary: 'The trust repository (TUF): approve and revoke artifacts per environment, rotate keys, publish freshness.',
  usage: '<subcommand> [flags]',
  details: `Subcommands:
${SUBCOMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Run "apx trust <subcommand> --help" for its flags. The repository lives under tuf/ in the
artifact store (--store URL, default $APX_STORE or ./artifacts); workers read it with
APX_TRUST_REPOSITORY and trust tuf/1.root.json given as APX_TRUST_ROOT. See docs/operations.md,
"Trust repository (apx trust)".`,
  flags: [],
  positionals: { min: 0, max: 0, names: '' },
  subcommands: SUBCOMMANDS,
  async run(ctx) {
    ctx.stdout.write(renderCommandHelp(trustCommand));
    return 2;
  },
};
