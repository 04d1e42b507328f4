import { formatArtifactRef, parseArtifactRef } from '@apx/core';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../../command.js';
import type { CliContext } from '../../context.js';
import {
  auditChange,
  commitChange,
  ENV_FLAG,
  environmentFlag,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  report,
  STORE_FLAG,
  withTrustStore,
} from './shared.js';

/** apx trust revoke, also run by the `apx revoke REF --env ENV` alias. */
export async function runTrustRevoke(ctx: CliContext, args: ParsedArgs): Promise<number> {
  const ref = parseArtifactRef(args.positionals[0] as string);
  const name = formatArtifactRef(ref);
  const env = environmentFlag(args);
  const reason = flagString(args, 'reason');
  if (!reason) throw new UsageError('--reason is required (it is kept in the environment role and shown by apx trust status)');
  const signers = await openSigners(ctx, args);
  return withTrustStore(ctx, args, async (store) => {
    let sha256 = '';
    const { result } = await commitChange(ctx, store, {
      signers,
      retry: { role: env },
      apply: (repo) => {
        const drafts = repo.revoke(env, ref, reason);
        const revoked = ((drafts.get(env)?.apx as { revoked?: Array<{ sha256: string }> } | undefined)?.revoked ?? []).at(-1);
        sha256 = revoked?.sha256 ?? '';
        return drafts;
      },
    });
    await auditChange(ctx, signers, result, {
      operation: 'trust revoke',
      reference: name,
      environment: env,
      reason,
      ...(sha256 ? { digest: `sha256:${sha256}` } : {}),
    });
    report(ctx, args, `revoked ${name} in ${env}`, result, { reference: name, environment: env, reason });
    return 0;
  });
}

export const REVOKE_FLAGS = [
  ENV_FLAG,
  { name: 'reason', type: 'string', value: 'TEXT', description: 'Why (kept with the revocation; required).' },
  KEY_FLAG,
  STORE_FLAG,
  JSON_FLAG,
] satisfies CommandSpec['flags'];

export const trustRevokeCommand: CommandSpec = {
  name: 'trust revoke',
  summary: "Revoke an approval: the environment's next version no longer lists the artifact; the reason is kept.",
  usage: 'REF --env ENV --reason TEXT --key REF... [--store URL] [--json]',
  details: `Removes REF (pb-pay-v1@1.0.0) from ENV's approved targets and records the path, SHA-256,
reason and time in the role: workers refresh the repository, unload it and refuse to load it.
--key: approver keys of ENV (a threshold of them publishes; fewer stage the revocation for
apx trust sign) and the snapshot and timestamp keys. A concurrent change is applied again on
top, up to 3 times, when your keys publish by themselves.`,
  flags: REVOKE_FLAGS,
  positionals: { min: 1, max: 1, names: 'REF (the approved artifact, e.g. pb-pay-v1@1.0.0)' },
  run: runTrustRevoke,
};
