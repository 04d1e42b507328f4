import type { CommandSpec, ParsedArgs } from '../../command.js';
import type { CliContext } from '../../context.js';
import {
  auditChange,
  commitChange,
  EXPIRES_FLAG,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  parseExpires,
  report,
  STORE_FLAG,
  trustModule,
  withTrustStore,
} from './shared.js';

/** apx trust publish, also run by the `apx index` alias. */
export async function runTrustPublish(ctx: CliContext, args: ParsedArgs): Promise<number> {
  const expires = parseExpires(args);
  const recover = args.flags.recover === true;
  const signers = await openSigners(ctx, args);
  return withTrustStore(ctx, args, async (store) => {
    const { result } = await commitChange(ctx, store, {
      signers,
      expires,
      ...(recover ? { recoverTimestamp: true } : {}),
      apply: () => new Map(),
      settle: (repo) => repo.publish([...signers]),
    });
    await auditChange(ctx, signers, result, { operation: 'trust publish' });
    const { TrustRepository } = await trustModule();
    const now = await TrustRepository.open(store);
    const timestampExpires = now.state.timestamp.signed.expires;
    const waiting = [...now.state.staged.values()].filter(
      (s) => s.metadata.signed.version > (now.committed(s.role)?.signed.version ?? 0),
    );
    const published = result.kind === 'published' ? Object.keys(result.roles) : [];
    const line =
      published.length > 0
        ? `published ${published.join(', ')}; timestamp expires ${timestampExpires}`
        : `renewed snapshot and timestamp; timestamp expires ${timestampExpires}`;
    report(ctx, args, line, result, { timestampExpires, waiting: waiting.map((s) => s.role) });
    if (args.flags.json !== true && result.kind === 'published' && waiting.length > 0) {
      ctx.stderr.write(
        `  still staged, waiting for signatures: ${waiting.map((s) => `${s.role} version ${s.metadata.signed.version}`).join(', ')} (apx trust status shows who must sign)\n`,
      );
    }
    return 0;
  });
}

export const trustPublishCommand: CommandSpec = {
  name: 'trust publish',
  summary: 'Publish complete staged changes, or renew snapshot and timestamp (the freshness heartbeat).',
  usage: '--key REF... [--expires ROLE=DURATION...] [--store URL] [--json]',
  details: `With the snapshot and timestamp keys (--key): publishes staged changes that have all their
signatures; in any case writes a new snapshot and timestamp with fresh expiries. Run it from a
scheduler more often than the timestamp expires (e.g. every 4 hours with --expires
timestamp=24h): workers refuse metadata past its expiry, so a frozen store cannot keep them on
old approvals. Staged changes still short of signatures stay staged and do not stop the renewal.
--recover: when tuf/timestamp.json is damaged or forged (workers refuse it and keep their last
good view), start from the newest snapshot that verifies and write a good timestamp over it.`,
  flags: [
    KEY_FLAG,
    EXPIRES_FLAG,
    STORE_FLAG,
    JSON_FLAG,
    {
      name: 'recover',
      type: 'boolean',
      description: 'Replace a damaged or forged tuf/timestamp.json, starting from the newest valid snapshot.',
    },
  ],
  positionals: { min: 0, max: 0, names: '' },
  run: runTrustPublish,
};
