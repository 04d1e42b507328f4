import type { CommandSpec } from '../../command.js';
import { auditChange, commitChange, JSON_FLAG, KEY_FLAG, openSigners, report, STORE_FLAG, withTrustStore } from './shared.js';

export const trustSignCommand: CommandSpec = {
  name: 'trust sign',
  summary: 'Add your signatures to the staged changes (offline multi-party signing); publish them once complete.',
  usage: '--key REF... [--store URL] [--json]',
  details: `Signs every staged change (tuf-staging/ in the store) with each --key that belongs to its
role: an approver of production signs a staged production approval, root keys sign a staged
root. When every staged role has its threshold and the snapshot and timestamp keys are among
--key, the changes are published; otherwise the command says what is still missing (role,
signatures, threshold, key ids). apx trust status lists what is staged.`,
  flags: [KEY_FLAG, STORE_FLAG, JSON_FLAG],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, {
        signers,
        apply: () => new Map(),
        settle: (repo) => repo.sign([...signers]),
      });
      await auditChange(ctx, signers, result, { operation: 'trust sign' });
      report(ctx, args, 'signed the staged changes', result);
      return 0;
    });
  },
};
