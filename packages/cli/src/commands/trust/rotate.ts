import type { PublicKey } from '@apx/core';
import type { TrustRepository } from '@apx/trust';
import { type CommandSpec, flagString, UsageError } from '../../command.js';
import { loadPublicKey } from '../../keyref.js';
import {
  auditChange,
  checkRole,
  commitChange,
  flagList,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  parseCount,
  report,
  STORE_FLAG,
  short,
  tufKeyId,
  withTrustStore,
} from './shared.js';

/** A role's threshold as in force: root's roles, or the targets delegation of an environment. */
export function currentThreshold(repo: TrustRepository, role: string): number | undefined {
  return repo.state.targets.signed.delegations?.roles?.[role]?.threshold ?? repo.state.root.signed.roles[role]?.threshold;
}

export const trustRotateCommand: CommandSpec = {
  name: 'trust rotate',
  summary: "Replace a role's keys: root, targets, snapshot, timestamp, or an environment's approvers.",
  usage: 'ROLE --new-key REF... [--threshold N] --key REF... [--store URL] [--json]',
  details: `ROLE is root, targets, snapshot, timestamp, dev, staging or production. The new keys
(--new-key, repeat for each; public key files are enough) replace the role's keys, with
--threshold N of them required (default: the role's current threshold).
Top-level roles live in root: the next root must be signed by a threshold of the current root
keys AND a threshold of the new root keys (TUF 5.3.4); workers follow the chain. An
environment's approvers live in targets: the targets keys sign, and the environment's role is
re-signed under its new keys (pass the new approver keys too, or they sign later with apx trust
sign). --key: every key you hold for this (old and new root keys, targets keys, new approver
keys) plus the snapshot and timestamp keys (the new ones when they are the rotated role).
Short of a threshold, the rotation is staged for apx trust sign.`,
  flags: [
    {
      name: 'new-key',
      type: 'string',
      value: 'REF',
      multiple: true,
      description: 'A new key of ROLE (public key file or any key reference; repeatable).',
    },
    {
      name: 'threshold',
      type: 'string',
      value: 'N',
      description: 'Signatures ROLE requires after the rotation (default: its current threshold).',
    },
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
  ],
  positionals: { min: 1, max: 1, names: 'ROLE (root, targets, snapshot, timestamp, dev, staging or production)' },
  async run(ctx, args) {
    const role = checkRole(args.positionals[0] as string, 'role');
    const refs = flagList(args, 'new-key');
    if (refs.length === 0) throw new UsageError('--new-key is required (repeat it for each new key)');
    const thresholdText = flagString(args, 'threshold');
    const threshold = thresholdText === undefined ? undefined : parseCount(thresholdText, '--threshold');
    const keys: PublicKey[] = [];
    for (const ref of refs) keys.push(await loadPublicKey(ctx, ref));
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      let applied = 1;
      const { result } = await commitChange(ctx, store, {
        signers,
        apply: (repo) => {
          applied = threshold ?? currentThreshold(repo, role) ?? 1;
          return repo.rotate(role, { keys, threshold: applied });
        },
      });
      const ids = await Promise.all(keys.map(tufKeyId));
      await auditChange(ctx, signers, result, { operation: 'trust rotate', reference: `${role} keys ${ids.join(',')}` });
      report(ctx, args, `rotated ${role} to ${applied} of ${ids.length} key(s) ${ids.map(short).join(', ')}`, result, {
        role,
        threshold: applied,
        keyIds: ids,
      });
      return 0;
    });
  },
};
