import { access, readFile } from 'node:fs/promises';
import { Keyring } from '@apx/core';
import { generateKeyPair } from '@apx/sign';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { environmentsFlag } from '../environment.js';
import { resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from '../keyref.js';
import { passwordProvider } from '../password.js';
import { putDocument, signDocument, withStore, writeDocumentFile } from '../trust-document.js';
import { writeKeyPairFiles } from './key-files.js';

export const KEYRING_OBJECT = 'keyring.json';

export const keysCommand: CommandSpec = {
  name: 'keys',
  summary: 'Rotate the signing key: a new key, and the next keyring signed by the current key.',
  usage: 'rotate [--key KEY] [--keyring FILE] [--output-key-prefix PREFIX] [--env LIST] [--publish URL]',
  details: `keys rotate creates a new key pair (cosign format), and writes the next version of the
keyring FILE (default keys/keyring.json; started from KEY when missing) in which the new key is
active for --env and the keys it replaces are retired as of now: what they signed until now keeps
verifying, nothing they sign later does, and they stay listed as history. The keyring is signed
by the current KEY, so workers holding the previous keyring accept it as the next link of the
chain (like TUF's root rotation); with --publish it is stored as keyring.json in the store, where
workers with APX_KEYRING=store pick it up without a restart. Then sign new artifacts with the
new key (--key PREFIX.key).`,
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

    const current = await openSigner(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
    const currentKey = await current.publicKey();
    const exists = await access(resolvePath(ctx, keyringPath)).then(
      () => true,
      () => false,
    );
    const keyring = exists
      ? Keyring.parse(await readFile(resolvePath(ctx, keyringPath), 'utf8'), keyringPath)
      : Keyring.single(currentKey);

    const pair = await generateKeyPair(await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true }));
    await writeKeyPairFiles(ctx, prefix, pair, false);
    const next = keyring.rotate(pair.publicKey, environments, now);
    const doc = await signDocument(ctx, current, 'keys rotate', next.toJSON(), `keyring version ${next.version}`);
    await writeDocumentFile(ctx, keyringPath, doc);
    info(ctx, `✓ Rotated:   new key ${prefix}.key (key id ${pair.publicKey.keyId}) active for ${environments.join(', ')}`);
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
  },
};
