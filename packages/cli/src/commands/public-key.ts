import { writeFileAtomic } from '@apx/sign';
import { type CommandSpec, flagString } from '../command.js';
import { info } from '../context.js';
import { resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY, loadPublicKey } from '../keyref.js';

export const publicKeyCommand: CommandSpec = {
  name: 'public-key',
  summary: 'Print the PEM public key (PKIX) of a key, and its key id.',
  usage: '[--key KEY] [--outfile FILE]',
  details: `KEY is a cosign private key file (its password is asked as for signing), a public key
file, or env://VAR. The key id (lowercase hex SHA-256 of the public key's DER) goes to stderr.`,
  flags: [
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The key: a cosign key file or a KMS/HSM URI (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    { name: 'outfile', type: 'string', value: 'FILE', description: 'Write the PEM to FILE instead of stdout.' },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const pub = await loadPublicKey(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
    const outfile = flagString(args, 'outfile');
    if (outfile) {
      await writeFileAtomic(resolvePath(ctx, outfile), pub.toPem(), { overwrite: true });
      info(ctx, `Public key written to ${outfile}`);
    } else {
      ctx.stdout.write(pub.toPem());
    }
    info(ctx, `Key id: ${pub.keyId}`);
    return 0;
  },
};
