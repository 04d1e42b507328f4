import { generateKeyPair } from '@apx/sign';
import { type CommandSpec, flagBool, flagString } from '../command.js';
import { passwordProvider } from '../password.js';
import { reportKeyPair, writeKeyPairFiles } from './key-files.js';

export const generateKeyPairCommand: CommandSpec = {
  name: 'generate-key-pair',
  summary: "Create an ECDSA P-256 key pair in cosign's format: PREFIX.key (encrypted, mode 0600) and PREFIX.pub.",
  usage: '[--output-key-prefix PREFIX] [--force]',
  details: `The private key is PEM "ENCRYPTED SIGSTORE PRIVATE KEY" (scrypt N=65536 + NaCl secretbox
over PKCS#8), byte-compatible with cosign generate-key-pair. The password comes from
COSIGN_PASSWORD when it is set (even empty), otherwise from a prompt (asked twice).`,
  flags: [
    {
      name: 'output-key-prefix',
      type: 'string',
      value: 'PREFIX',
      description: 'Path prefix of the key files (default: keys/cosign).',
    },
    { name: 'force', type: 'boolean', description: 'Overwrite existing key files.' },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const prefix = flagString(args, 'output-key-prefix') ?? 'keys/cosign';
    const force = flagBool(args, 'force');
    const password = await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true });
    const pair = await generateKeyPair(password);
    await writeKeyPairFiles(ctx, prefix, pair, force);
    reportKeyPair(ctx, prefix, pair);
    return 0;
  },
};
