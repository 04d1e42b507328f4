import type { PublicKey } from '@apx/core';
import type { Signer } from '@apx/sign';
import type { InitRoles, RoleKeys } from '@apx/trust';
import { auditTrust } from '../../audit.js';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../../command.js';
import { loadPublicKey, openSigner } from '../../keyref.js';
import {
  checkEnvironment,
  ENVIRONMENT_NAMES,
  EXPIRES_FLAG,
  flagList,
  JSON_FLAG,
  KEY_FLAG,
  parseAssignments,
  parseCount,
  parseExpires,
  resultJson,
  resultRoles,
  resultText,
  STORE_FLAG,
  short,
  signerIds,
  TOP_LEVEL_NAMES,
  trustModule,
  tufKeyId,
  withTrustStore,
  writeJson,
} from './shared.js';

interface RoleReport {
  role: string;
  threshold: number;
  keys: Array<{ keyId: string; keyRef: string }>;
  expires?: string;
}

/** The parsed flags of apx trust init: key references by role and thresholds. */
export interface InitPlan {
  roleKeys: Record<(typeof TOP_LEVEL_NAMES)[number], string[]>;
  roleThresholds: Record<'root' | 'targets', number>;
  approvers: Record<string, string[]>;
  approverThresholds: Record<string, number>;
  expires: Record<string, number>;
}

export function parseInitFlags(args: ParsedArgs): InitPlan {
  const refs = (flag: string, one: boolean) => {
    const list = flagList(args, flag);
    if (list.length === 0) throw new UsageError(`--${flag} is required`);
    if (one && list.length > 1) throw new UsageError(`--${flag} takes one key (rotate to more keys later with apx trust rotate)`);
    return list;
  };
  const count = (flag: string) => {
    const text = flagString(args, flag);
    return text === undefined ? 1 : parseCount(text, `--${flag}`);
  };
  const approvers: Record<string, string[]> = {};
  for (const [env, ref] of parseAssignments(flagList(args, 'approver'), 'approver')) {
    checkEnvironment(env, '--approver');
    approvers[env] = [...(approvers[env] ?? []), ref];
  }
  for (const env of ENVIRONMENT_NAMES) {
    if (!approvers[env])
      throw new UsageError(`--approver ${env}=KEY is missing: every environment (dev, staging, production) needs an approver`);
  }
  const approverThresholds: Record<string, number> = {};
  for (const [env, n] of parseAssignments(flagList(args, 'threshold'), 'threshold')) {
    checkEnvironment(env, '--threshold');
    if (approverThresholds[env] !== undefined) throw new UsageError(`--threshold names ${env} twice`);
    approverThresholds[env] = parseCount(n, `--threshold ${env}=`);
  }
  return {
    roleKeys: {
      root: refs('root-key', false),
      targets: refs('targets-key', false),
      snapshot: refs('snapshot-key', true),
      timestamp: refs('timestamp-key', true),
    },
    roleThresholds: { root: count('root-threshold'), targets: count('targets-threshold') },
    approvers,
    approverThresholds,
    expires: parseExpires(args, TOP_LEVEL_NAMES),
  };
}

export const trustInitCommand: CommandSpec = {
  name: 'trust init',
  summary: 'Create the trust repository: root, targets (one approver role per environment), snapshot, timestamp.',
  usage:
    '--root-key REF... [--root-threshold N] --targets-key REF... [--targets-threshold N] --snapshot-key REF --timestamp-key REF --approver ENV=REF... [--threshold ENV=N...] [--key REF...] [--expires ROLE=DURATION...] [--store URL] [--json]',
  details: `Writes tuf/1.root.json, tuf/1.targets.json, tuf/1.snapshot.json and tuf/timestamp.json into
the store. Root, targets, snapshot and timestamp keys are private key references (key file, KMS
or HSM): each role is signed now by a threshold of its keys. Approver keys (--approver
production=keys/alice.pub, repeated per approver; every environment needs at least one) may be
public keys: only their public half is written; production usually requires 2 of 3
(--threshold production=2). Role keys must be ECDSA P-256 or Ed25519 (apx generate-key-pair
makes P-256 keys). Each environment is delegated together with its first version, which its
approvers sign: approver keys passed with --key sign now; without them the environments wait,
staged, until the approvers run apx trust sign. Give workers tuf/1.root.json as APX_TRUST_ROOT.
An existing repository is never overwritten.`,
  flags: [
    STORE_FLAG,
    {
      name: 'root-key',
      type: 'string',
      value: 'REF',
      multiple: true,
      description: 'A root key (private; repeat for each root key).',
    },
    { name: 'root-threshold', type: 'string', value: 'N', description: 'Root signatures required (default: 1).' },
    { name: 'targets-key', type: 'string', value: 'REF', multiple: true, description: 'A targets key (private; repeatable).' },
    { name: 'targets-threshold', type: 'string', value: 'N', description: 'Targets signatures required (default: 1).' },
    {
      name: 'snapshot-key',
      type: 'string',
      value: 'REF',
      multiple: true,
      description: 'The snapshot key (private; an online key: apx trust publish uses it).',
    },
    {
      name: 'timestamp-key',
      type: 'string',
      value: 'REF',
      multiple: true,
      description: 'The timestamp key (private; an online key: apx trust publish uses it).',
    },
    {
      name: 'approver',
      type: 'string',
      value: 'ENV=REF',
      multiple: true,
      description: 'An approver of an environment (dev, staging, production): public key file or any key reference (repeatable).',
    },
    {
      name: 'threshold',
      type: 'string',
      value: 'ENV=N',
      multiple: true,
      description: 'Approver signatures an environment requires, e.g. production=2 (default: 1).',
    },
    {
      ...KEY_FLAG,
      description:
        'An approver key present now (repeatable): signs the first version of its environment, which otherwise waits staged for apx trust sign.',
    },
    {
      ...EXPIRES_FLAG,
      description: 'Validity of root, targets, snapshot or timestamp, e.g. timestamp=24h (defaults: 365d, 365d, 7d, 24h).',
    },
    JSON_FLAG,
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const plan = parseInitFlags(args);
    const opened = new Map<string, Signer>();
    const signer = async (ref: string) => {
      const known = opened.get(ref);
      if (known) return known;
      const s = await openSigner(ctx, ref);
      opened.set(ref, s);
      return s;
    };
    const reports: RoleReport[] = [];
    const roleSpec = async (role: string, refs: string[], threshold: number, load: (ref: string) => Promise<PublicKey>) => {
      const keys = await Promise.all(refs.map(load));
      reports.push({
        role,
        threshold,
        keys: await Promise.all(keys.map(async (k, i) => ({ keyId: await tufKeyId(k), keyRef: refs[i] as string }))),
      });
      return { keys, threshold } satisfies RoleKeys;
    };
    const privateKey = async (ref: string) => (await signer(ref)).publicKey();
    const roles: InitRoles = {
      root: await roleSpec('root', plan.roleKeys.root, plan.roleThresholds.root, privateKey),
      targets: await roleSpec('targets', plan.roleKeys.targets, plan.roleThresholds.targets, privateKey),
      snapshot: await roleSpec('snapshot', plan.roleKeys.snapshot, 1, privateKey),
      timestamp: await roleSpec('timestamp', plan.roleKeys.timestamp, 1, privateKey),
      environments: {},
    };
    for (const env of ENVIRONMENT_NAMES) {
      const refs = plan.approvers[env] as string[];
      roles.environments[env] = await roleSpec(env, refs, plan.approverThresholds[env] ?? 1, (ref) => loadPublicKey(ctx, ref));
    }
    // Approvers present at the ceremony sign the first version of their environment now (--key);
    // otherwise the environments wait, staged, for apx trust sign.
    for (const ref of flagList(args, 'key')) await signer(ref);
    const { TrustRepository } = await trustModule();
    const signers = [...opened.values()];
    const created = await withTrustStore(ctx, args, async (store) => {
      const result = await TrustRepository.init(store, roles, signers, { expires: plan.expires });
      return { url: store.url, result, repo: await TrustRepository.open(store) };
    });
    const { state } = created.repo;
    const expiries: Record<string, string> = {
      root: state.root.signed.expires,
      targets: state.targets.signed.expires,
      snapshot: state.snapshot.signed.expires,
      timestamp: state.timestamp.signed.expires,
    };
    for (const r of reports) {
      const at = expiries[r.role] ?? state.environments.get(r.role)?.signed.expires;
      if (at) r.expires = at;
    }
    await auditTrust(ctx, {
      operation: 'trust init',
      outcome: created.result.kind === 'published' ? 'created' : 'created, environments staged',
      roles: { root: 1, targets: 1, snapshot: 1, timestamp: 1, ...resultRoles(created.result) },
      keys: await signerIds(signers),
    });
    if (args.flags.json === true) {
      writeJson(ctx, {
        store: created.url,
        roles: reports,
        trustRoot: 'tuf/1.root.json',
        environments: resultJson(created.result),
      });
      return 0;
    }
    const width = Math.max(...reports.map((r) => r.role.length)) + 2;
    const lines = [`✓ Created the trust repository in ${created.url} (tuf/)`];
    for (const r of reports) {
      const keys = r.keys.map((k) => `${short(k.keyId)} (${k.keyRef})`).join(', ');
      lines.push(
        `  ${r.role.padEnd(width)}${r.threshold} of ${r.keys.length}: ${keys}${r.expires ? `, expires ${r.expires}` : ''}`,
      );
    }
    lines.push(
      created.result.kind === 'published'
        ? '✓ Environments dev, staging and production delegated to their approvers (published)'
        : `… Environments dev, staging and production: ${resultText(created.result)}`,
      'Workers trust tuf/1.root.json first: give them a copy as APX_TRUST_ROOT (for example APX_TRUST_ROOT=/etc/apx/1.root.json).',
      'Next: trust an artifact signing key per environment (apx trust signer add --env ENV KEY.pub), then approve artifacts (apx trust approve).',
    );
    ctx.stderr.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
