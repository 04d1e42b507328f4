import { access, readFile } from 'node:fs/promises';
import { type Environment, Keyring, type PublicKey } from '@apx/core';
import { isKmsRef, redactKeyRef } from '@apx/kms/key-ref';
import { generateKeyPair, type Signer, writeFileAtomic } from '@apx/sign';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { environmentsFlag } from '../environment.js';
import { resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY, loadPublicKey, openSigner } from '../keyref.js';
import { passwordProvider } from '../password.js';
import { putDocument, signDocument, withStore, writeDocumentFile } from '../trust-document.js';
import { writeKeyPairFiles } from './key-files.js';

export const KEYRING_OBJECT = 'keyring.json';

export const keysCommand: CommandSpec = {
  name: 'keys',
  summary: 'Rotate the signing key: a new key, and the next keyring signed by the current key.',
  usage:
    'rotate [--key KEY] [--kms URI | --new-key KEY] [--keyring FILE] [--output-key-prefix PREFIX] [--env LIST] [--publish URL]',
  details: `keys rotate creates a new key pair (cosign format), and writes the next version of the
keyring FILE (default keys/keyring.json; started from KEY when missing) in which the new key is
active for --env and the keys it replaces are retired as of now: what they signed until now keeps
verifying, nothing they sign later does, and they stay listed as history. The keyring is signed
by the current KEY, so workers holding the previous keyring accept it as the next link of the
chain (like TUF's root rotation); with --publish it is stored as keyring.json in the store, where
workers with APX_KEYRING=store pick it up without a restart. Then sign new artifacts with the
new key (--key PREFIX.key, or its URI). KEY, --kms and --new-key accept KMS and HSM references
(gcpkms://, awskms://, hashivault://, pkcs11:): the current key can sign the keyring from a KMS,
and the new key can be created there (--kms) or already exist (--new-key, e.g. a new version).`,
  flags: [
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The current private key, which signs the next keyring (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    { name: 'keyring', type: 'string', value: 'FILE', description: 'The keyring file to extend (default: keys/keyring.json).' },
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
    {
      name: 'env',
      type: 'string',
      value: 'LIST',
      description: 'Environments the new key signs for, comma-separated (default: dev,staging,production).',
    },
    {
      name: 'publish',
      type: 'string',
      value: 'URL',
      description: 'Also store keyring.json and its signature in this store (directory, gs://, s3://).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'the subcommand (rotate)' },
  async run(ctx, args) {
    if (args.positionals[0] !== 'rotate')
      throw new UsageError(`unknown subcommand keys ${args.positionals[0]}; use: apx keys rotate`);
    const environments = environmentsFlag(args);
    const keyringPath = flagString(args, 'keyring') ?? 'keys/keyring.json';
    const now = new Date();
    const prefix = flagString(args, 'output-key-prefix') ?? `keys/cosign-${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}`;

    if (flagString(args, 'new-key') && flagString(args, 'kms')) {
      throw new UsageError('--new-key names an existing key and --kms creates one: pass only one of them');
    }
    const current = await openSigner(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
    return rotate(ctx, args, current, { environments, keyringPath, now, prefix });
  },
};

/**
 * The key rotated to: a new cosign key pair (PREFIX.key, PREFIX.pub) by default; with --kms,
 * a key created in a KMS or HSM; with --new-key, an existing key (a KMS or HSM URI, or a
 * public key file from a key ceremony). For keys held elsewhere PREFIX.pub is written too,
 * once the key is known not to be in the keyring already (a refusal leaves no file behind).
 */
async function newKey(
  ctx: CliContext,
  args: ParsedArgs,
  prefix: string,
  keyring: Keyring,
  keyringPath: string,
): Promise<{ publicKey: PublicKey; name: string }> {
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
    const name = redactKeyRef((kms ?? existing) as string);
    if (keyring.entries.some((e) => e.keyId === publicKey.keyId)) {
      throw new UsageError(`${name} (key id ${publicKey.keyId}) is already in the keyring ${keyringPath}; rotate to a new key`);
    }
    await writeFileAtomic(resolvePath(ctx, `${prefix}.pub`), publicKey.toPem(), { overwrite: false });
    return { publicKey, name };
  }
  const pair = await generateKeyPair(await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true }));
  await writeKeyPairFiles(ctx, prefix, pair, false);
  return { publicKey: pair.publicKey, name: `${prefix}.key` };
}

async function rotate(
  ctx: CliContext,
  args: ParsedArgs,
  current: Signer,
  { environments, keyringPath, now, prefix }: { environments: Environment[]; keyringPath: string; now: Date; prefix: string },
): Promise<number> {
  const currentKey = await current.publicKey();
  const exists = await access(resolvePath(ctx, keyringPath)).then(
    () => true,
    () => false,
  );
  const keyring = exists
    ? Keyring.parse(await readFile(resolvePath(ctx, keyringPath), 'utf8'), keyringPath)
    : Keyring.single(currentKey);

  const { publicKey, name } = await newKey(ctx, args, prefix, keyring, keyringPath);
  const next = keyring.rotate(publicKey, environments, now);
  const doc = await signDocument(ctx, current, 'keys rotate', next.toJSON(), `keyring version ${next.version}`);
  await writeDocumentFile(ctx, keyringPath, doc);
  info(ctx, `✓ Rotated:   new key ${name} (key id ${publicKey.keyId}) active for ${environments.join(', ')}`);
  info(ctx, `✓ Keyring:   ${keyringPath} version ${next.version}, signed by ${currentKey.keyId}`);
  const url = flagString(args, 'publish');
  if (url) {
    const where = await withStore(ctx, url, async (store) => {
      await putDocument(store, KEYRING_OBJECT, doc);
      return store.url;
    });
    info(ctx, `✓ Published: ${KEYRING_OBJECT} version ${next.version} to ${where}`);
  }
  return 0;
}
