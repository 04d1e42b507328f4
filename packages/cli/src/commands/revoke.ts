import { access, readFile } from 'node:fs/promises';
import { RevocationList, revocationTarget } from '@apx/core';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from '../keyref.js';
import { putDocument, signDocument, withStore, writeDocumentFile } from '../trust-document.js';
import { REVOKE_FLAGS, runTrustRevoke } from './trust/revoke.js';

export const REVOCATIONS_FILE = 'revocations.json';

/**
 * `apx revoke REF --env ENV`: an alias of apx trust revoke. Without --env, the legacy form
 * (a signed revocations.json for workers with APX_REVOCATIONS) still works until workers
 * drop it; it says so on every use.
 */
export const revokeCommand: CommandSpec = {
  name: 'revoke',
  summary: 'Revoke an approved artifact in an environment: alias of apx trust revoke.',
  usage: 'REF --env ENV --reason TEXT --key REF... [--store URL] [--json]',
  details: `apx revoke REF --env ENV ... runs apx trust revoke (see apx trust revoke --help); --publish URL
is read as --store URL. Without --env it writes the legacy signed revocation list (--list FILE,
default revocations.json; REF, sha256:DIGEST or KEYID; --publish URL) read by workers with
APX_REVOCATIONS: deprecated, replaced by the trust repository (docs/operations.md, "Migrating
from keyring / revocations.json / index.json").`,
  flags: [
    ...REVOKE_FLAGS,
    {
      name: 'list',
      type: 'string',
      value: 'FILE',
      description: `Legacy (no --env): the revocation list file (default: ${REVOCATIONS_FILE}).`,
    },
    {
      name: 'publish',
      type: 'string',
      value: 'URL',
      description: 'With --env: the store (as --store). Legacy (no --env): also store the list there.',
    },
  ],
  positionals: { min: 1, max: 1, names: 'REF (the artifact to revoke, e.g. pb-pay-v1@1.0.0)' },
  async run(ctx, args) {
    if (flagString(args, 'env') === undefined) return legacyRevoke(ctx, args);
    if (flagString(args, 'list') !== undefined) {
      throw new UsageError(
        '--list is the legacy revocation list; with --env the revocation goes into the trust repository (drop --list)',
      );
    }
    const publish = flagString(args, 'publish');
    if (publish !== undefined && flagString(args, 'store') !== undefined)
      throw new UsageError('pass --store or --publish, not both');
    return runTrustRevoke(ctx, publish === undefined ? args : { ...args, flags: { ...args.flags, store: publish } });
  },
};

async function legacyRevoke(ctx: CliContext, args: ParsedArgs): Promise<number> {
  const targetText = args.positionals[0] as string;
  const target = revocationTarget(targetText);
  if (!target) throw new UsageError(`${targetText} is not a reference (pb-pay-v1@1.0.0), sha256:<digest> or key id (64 hex)`);
  const reason = flagString(args, 'reason');
  if (!reason) throw new UsageError('--reason is required');
  const keys = args.flags.key as string[] | undefined;
  if (keys !== undefined && keys.length > 1) throw new UsageError('the legacy revocation list (no --env) is signed by one --key');
  info(
    ctx,
    `WARNING: apx revoke without --env writes the legacy revocations.json (deprecated): use apx trust revoke ${targetText} --env ENV --reason TEXT --key KEY...`,
  );
  const listPath = flagString(args, 'list') ?? REVOCATIONS_FILE;
  const onDisk = resolvePath(ctx, listPath);
  const exists = await access(onDisk).then(
    () => true,
    () => false,
  );
  const held = exists ? RevocationList.parse(await readFile(onDisk, 'utf8'), listPath) : RevocationList.empty();
  const now = new Date();
  const next = held.add({ ...target, reason, revokedAt: now.toISOString() }, now);
  const signer = await openSigner(ctx, keys?.[0] ?? DEFAULT_PRIVATE_KEY);
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
}
