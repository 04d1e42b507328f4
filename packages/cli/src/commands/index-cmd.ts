import type { CommandSpec } from '../command.js';
import { runTrustPublish } from './trust/publish.js';
import { EXPIRES_FLAG, flagList, JSON_FLAG, KEY_FLAG, STORE_FLAG } from './trust/shared.js';

/**
 * `apx index`: an alias of apx trust publish, the freshness heartbeat. The signed index.json
 * it used to write is replaced by the trust repository's timestamp, whose expiry is the
 * workers' freshness; `--expires 24h` (no role) keeps meaning that expiry.
 */
export const indexCommand: CommandSpec = {
  name: 'index',
  summary: 'Publish freshness (renew snapshot and timestamp): alias of apx trust publish.',
  usage: '--key REF... [--expires ROLE=DURATION | DURATION] [--store URL] [--json]',
  details: `Runs apx trust publish (see apx trust publish --help); --expires 24h (without a role) means
--expires timestamp=24h. The signed index.json of earlier releases is replaced by the trust
repository (docs/operations.md, "Migrating from keyring / revocations.json / index.json"); a
store without one answers "no trust repository": create it with apx trust init.`,
  flags: [KEY_FLAG, EXPIRES_FLAG, STORE_FLAG, JSON_FLAG],
  positionals: { min: 0, max: 0, names: '' },
  run(ctx, args) {
    const expires = flagList(args, 'expires').map((e) => (e.includes('=') ? e : `timestamp=${e}`));
    return runTrustPublish(ctx, { ...args, flags: { ...args.flags, expires } });
  },
};
