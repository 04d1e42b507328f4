import { type CommandSpec, flagString, UsageError } from '../command.js';
import { REVOKE_FLAGS, runTrustRevoke } from './trust/revoke.js';

const NEW_FORM = 'apx trust revoke REF --env ENV --reason TEXT --key KEY...';

/**
 * `apx revoke REF --env ENV`: an alias of apx trust revoke. The signed revocations.json it
 * used to write is gone with the workers that read it; its other forms say what replaces them.
 */
export const revokeCommand: CommandSpec = {
  name: 'revoke',
  summary: 'Revoke an approved artifact in an environment: alias of apx trust revoke.',
  usage: 'REF --env ENV --reason TEXT --key REF... [--store URL] [--json]',
  details: `Runs apx trust revoke (see apx trust revoke --help); --publish URL, the store of the old form,
is read as --store URL. The signed revocations.json of earlier releases (--list FILE, revoking a
sha256:DIGEST or a key id) is replaced by the trust repository: revocations are recorded in the
environment's role, and a signing key stops being trusted with apx trust signer remove
(docs/operations.md, "Migrating from keyring / revocations.json / index.json").`,
  flags: [
    ...REVOKE_FLAGS,
    {
      name: 'list',
      type: 'string',
      value: 'FILE',
      description: 'Removed (the revocation list file); refused with the new form.',
    },
    { name: 'publish', type: 'string', value: 'URL', description: 'The store, as --store URL (the old form).' },
  ],
  positionals: { min: 1, max: 1, names: 'REF (the approved artifact, e.g. pb-pay-v1@1.0.0)' },
  async run(ctx, args) {
    const target = args.positionals[0] as string;
    if (/^sha256:/.test(target)) {
      throw new UsageError(`revoking by digest is gone: revoke the reference approved with that digest: ${NEW_FORM}`);
    }
    if (/^[0-9a-f]{64}$/.test(target)) {
      throw new UsageError(`revoking a key is now: apx trust signer remove --env ENV ${target.slice(0, 12)} --key KEY...`);
    }
    if (flagString(args, 'list') !== undefined) {
      throw new UsageError(`--list: the revocation list file is gone; revocations live in the trust repository: ${NEW_FORM}`);
    }
    if (flagString(args, 'env') === undefined) throw new UsageError(`--env is required: apx revoke is ${NEW_FORM}`);
    const publish = flagString(args, 'publish');
    if (publish !== undefined && flagString(args, 'store') !== undefined)
      throw new UsageError('pass --store or --publish, not both');
    return runTrustRevoke(ctx, publish === undefined ? args : { ...args, flags: { ...args.flags, store: publish } });
  },
};
