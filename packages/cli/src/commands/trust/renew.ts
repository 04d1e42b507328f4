import type { CommandSpec } from '../../command.js';
import {
  auditChange,
  checkRole,
  commitChange,
  EXPIRES_FLAG,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  parseExpires,
  report,
  STORE_FLAG,
  withTrustStore,
} from './shared.js';

export const trustRenewCommand: CommandSpec = {
  name: 'trust renew',
  summary: "Re-sign a role with a new expiry, unchanged (before root, targets or an environment's approvals expire).",
  usage: 'ROLE --key REF... [--expires ROLE=DURATION] [--store URL] [--json]',
  details: `ROLE is root, targets, dev, staging or production (snapshot and timestamp are renewed by
apx trust publish). Its next version says the same with a new expiry (defaults: root and targets
365d, environments 90d; --expires ROLE=DURATION to change it). --key: a threshold of the role's
keys (an environment's approvers, the targets keys, the root keys) and the snapshot and
timestamp keys; fewer stage the renewal for apx trust sign. apx trust status shows each role's expiry.`,
  flags: [KEY_FLAG, EXPIRES_FLAG, STORE_FLAG, JSON_FLAG],
  positionals: { min: 1, max: 1, names: 'ROLE (root, targets, dev, staging or production)' },
  async run(ctx, args) {
    const role = checkRole(args.positionals[0] as string, 'role');
    const expires = parseExpires(args);
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, { signers, expires, apply: (repo) => repo.renew(role) });
      await auditChange(ctx, signers, result, { operation: 'trust renew', reference: role });
      report(ctx, args, `renewed ${role}`, result, { role });
      return 0;
    });
  },
};
