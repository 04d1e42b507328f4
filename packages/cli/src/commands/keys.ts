import { dirname, join } from 'node:path';
import type { PublicKey } from '@apx/core';
import { isKmsRef, redactKeyRef } from '@apx/kms/key-ref';
import { generateKeyPair, writeFileAtomic } from '@apx/sign';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { resolvePath } from '../io.js';
import { loadPublicKey } from '../keyref.js';
import { passwordProvider } from '../password.js';
import { ROTATIONS_FILE, recordRotation } from '../retired-keys.js';
import { writeKeyPairFiles } from './key-files.js';
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
} from './trust/shared.js';

/**
 * `apx keys rotate`: a new artifact signing key, trusted for an environment in the trust
 * repository (apx trust signer add), and optionally the key it replaces no longer trusted
 * (apx trust signer remove), in one new version of the environment's role. The keyring file
 * of earlier releases is gone: rotation history is the role's version history.
 */
export const keysCommand: CommandSpec = {
  name: 'keys',
  summary: 'Rotate the artifact signing key of an environment (alias of apx trust signer add/remove).',
  usage: 'rotate --env ENV [--kms URI | --new-key KEY] [--output-key-prefix PREFIX] [--retire KEYID] --key REF... [--store URL]',
  details: `keys rotate creates a new key pair (cosign format, PREFIX.key and PREFIX.pub), or a key in a
KMS or HSM (--kms), or takes an existing key (--new-key: a KMS or HSM URI or a public key file),
and adds it to ENV's trusted artifact signers in the trust repository; with --retire KEYID the key
it replaces stops being trusted in the same change (artifacts signed only by it stop verifying
for ENV: re-sign and approve new versions with the new key first), and signing for ENV with the
retired key is refused from then on, naming the new key (recorded in rotations.json beside the
new key files, default keys/rotations.json). --key names the keys that
sign the change: ENV's approvers (a threshold publishes, fewer stage it for apx trust sign) and
the snapshot and timestamp keys. The keyring.json of earlier releases is replaced by this
(docs/operations.md, "Migrating from keyring / revocations.json / index.json").`,
  flags: [
    ENV_FLAG,
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
    {
      name: 'output-key-prefix',
      type: 'string',
      value: 'PREFIX',
      description: 'Where the new key pair goes (default: keys/cosign-<UTC time>).',
    },
    {
      name: 'kms',
      type: 'string',
      value: 'URI',
      description: 'Create the new key in a KMS or HSM (as generate-key-pair --kms) instead of a key file.',
    },
    {
      name: 'new-key',
      type: 'string',
      value: 'KEY',
      description: 'Rotate to an existing key: a KMS or HSM URI, or a public key file (PEM).',
    },
    { name: 'retire', type: 'string', value: 'KEYID', description: 'The key id of the signing key to stop trusting.' },
  ],
  positionals: { min: 1, max: 1, names: 'the subcommand (rotate)' },
  async run(ctx, args) {
    if (args.positionals[0] !== 'rotate')
      throw new UsageError(`unknown subcommand keys ${args.positionals[0]}; use: apx keys rotate`);
    if (flagString(args, 'new-key') && flagString(args, 'kms')) {
      throw new UsageError('--new-key names an existing key and --kms creates one: pass only one of them');
    }
    const env = environmentFlag(args);
    const signers = await openSigners(ctx, args, { required: true });
    const now = new Date();
    const prefix = flagString(args, 'output-key-prefix') ?? `keys/cosign-${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
    const retire = flagString(args, 'retire');
    const kms = flagString(args, 'kms');
    const existing = flagString(args, 'new-key');
    // What to pass as --key to sign with the new key: its key file, or its KMS/HSM reference.
    const signWith =
      kms !== undefined
        ? redactKeyRef(kms)
        : existing === undefined
          ? `${prefix}.key`
          : isKmsRef(existing)
            ? existing
            : undefined;
    const keyDir = kms === undefined && existing === undefined ? dirname(prefix) : 'keys';
    return withTrustStore(ctx, args, async (store) => {
      const { publicKey, name } = await newKey(ctx, args, prefix);
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: (repo) => repo.setSigner(env, { add: publicKey, ...(retire ? { removeKeyId: retire } : {}) }),
      });
      await auditChange(ctx, signers, result, {
        operation: 'keys rotate',
        environment: env,
        reference: `key ${publicKey.keyId}`,
      });
      info(ctx, `✓ New key:   ${name} (key id ${publicKey.keyId})`);
      if (retire && result.kind === 'published') {
        await recordRotation(ctx, keyDir, {
          keyId: retire,
          environment: env,
          retiredAt: now.toISOString(),
          successor: { keyId: publicKey.keyId, key: signWith ?? '' },
        });
      }
      info(
        ctx,
        signWith
          ? `  Sign for ${env} with it from now on: --key ${signWith}${retire ? ` (signing with ${retire.slice(0, 12)} for ${env} is refused, recorded in ${join(keyDir, ROTATIONS_FILE)})` : ''}`
          : `  Sign for ${env} with the private key of ${name} from now on`,
      );
      const retired = retire ? `, no longer trusts ${retire}` : '';
      report(ctx, args, `${env} trusts artifact signing key ${publicKey.keyId}${retired}`, result, {
        environment: env,
        keyId: publicKey.keyId,
        retired: retire ?? null,
      });
      return 0;
    });
  },
};

/**
 * The key rotated to: a new cosign key pair (PREFIX.key, PREFIX.pub) by default; with --kms,
 * a key created in a KMS or HSM; with --new-key, an existing key. For keys held elsewhere
 * PREFIX.pub is written too.
 */
async function newKey(ctx: CliContext, args: ParsedArgs, prefix: string): Promise<{ publicKey: PublicKey; name: string }> {
  const kms = flagString(args, 'kms');
  const existing = flagString(args, 'new-key');
  if (kms !== undefined || existing !== undefined) {
    let publicKey: PublicKey;
    if (kms !== undefined) {
      if (!isKmsRef(kms)) throw new UsageError(`--kms ${kms}: expected a KMS or HSM key reference, not a file`);
      const { createKmsKey } = await import('@apx/kms');
      const key = await createKmsKey(kms, ctx.env);
      publicKey = await key.publicKey().finally(() => key.close());
    } else {
      publicKey = await loadPublicKey(ctx, existing as string);
    }
    await writeFileAtomic(resolvePath(ctx, `${prefix}.pub`), publicKey.toPem(), { overwrite: false });
    return { publicKey, name: redactKeyRef((kms ?? existing) as string) };
  }
  const pair = await generateKeyPair(await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true }));
  await writeKeyPairFiles(ctx, prefix, pair, false);
  return { publicKey: pair.publicKey, name: `${prefix}.key` };
}
