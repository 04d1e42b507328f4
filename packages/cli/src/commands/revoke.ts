import { access, readFile } from 'node:fs/promises';
import { RevocationList, revocationTarget } from '@apx/core';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from '../keyref.js';
import { putDocument, signDocument, withStore, writeDocumentFile } from '../trust-document.js';

export const REVOCATIONS_FILE = 'revocations.json';

export const revokeCommand: CommandSpec = {
  name: 'revoke',
  summary: 'Revoke an artifact (by reference or digest) or a key: a new, signed version of the revocation list.',
  usage: '(REF | sha256:DIGEST | KEYID) --reason TEXT [--key KEY] [--list FILE] [--publish URL]',
  details: `Adds one entry to the revocation list FILE (default revocations.json; created when missing),
raises its version, signs it with KEY (FILE.sig, cosign's detached format) and, with --publish,
stores both in the artifact store (revocations.json and revocations.json.sig). Workers with
APX_REVOCATIONS poll the list, verify it with an active key of their keyring, unload what it
revokes, refuse to load it again, and refuse a list older than the one they hold.`,
  flags: [
    { name: 'reason', type: 'string', value: 'TEXT', description: 'Why (recorded in the list and in worker logs; required).' },
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The private key that signs the list (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    { name: 'list', type: 'string', value: 'FILE', description: `The revocation list file (default: ${REVOCATIONS_FILE}).` },
    {
      name: 'publish',
      type: 'string',
      value: 'URL',
      description: 'Also store the list and its signature in this store (directory, gs://, s3://).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'REF, sha256:DIGEST or KEYID (what to revoke)' },
  async run(ctx, args) {
    const targetText = args.positionals[0] as string;
    const target = revocationTarget(targetText);
    if (!target) throw new UsageError(`${targetText} is not a reference (pb-pay-v1@1.0.0), sha256:<digest> or key id (64 hex)`);
    const reason = flagString(args, 'reason');
    if (!reason) throw new UsageError('--reason is required');
    const listPath = flagString(args, 'list') ?? REVOCATIONS_FILE;
    const onDisk = resolvePath(ctx, listPath);
    const exists = await access(onDisk).then(
      () => true,
      () => false,
    );
    const held = exists ? RevocationList.parse(await readFile(onDisk, 'utf8'), listPath) : RevocationList.empty();
    const now = new Date();
    const next = held.add({ ...target, reason, revokedAt: now.toISOString() }, now);
    const signer = await openSigner(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
    const doc = await signDocument(ctx, signer, 'revoke', next.toJSON(), targetText);
    await writeDocumentFile(ctx, listPath, doc);
    info(ctx, `✓ Revoked:   ${targetText} (revocation list ${listPath}, version ${next.version})`);
    const url = flagString(args, 'publish');
    if (url) {
      const where = await withStore(ctx, url, async (store) => {
        await putDocument(store, REVOCATIONS_FILE, doc);
        return store.url;
      });
      info(ctx, `✓ Published: ${REVOCATIONS_FILE} version ${next.version} to ${where}`);
    }
    return 0;
  },
};
