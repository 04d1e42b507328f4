import { encodeKeyPair, parseImportableKey } from '@apx/sign';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import { readInput } from '../io.js';
import { passwordProvider } from '../password.js';
import { reportKeyPair, writeKeyPairFiles } from './key-files.js';

export const importKeyPairCommand: CommandSpec = {
  name: 'import-key-pair',
  summary: 'Wrap an existing plain PEM private key as a cosign encrypted key pair.',
  usage: '--key PEM [--output-key-prefix PREFIX] [--force]',
  details: `Accepts what cosign import-key-pair accepts: EC P-256/P-384/P-521 (SEC1 "EC PRIVATE KEY" or
PKCS#8 "PRIVATE KEY"), RSA of 2048, 3072 or 4096 bits (PKCS#1 "RSA PRIVATE KEY" or PKCS#8) and
Ed25519 (PKCS#8). Other keys are refused with cosign's reason. Writes PREFIX.key (encrypted with
the COSIGN_PASSWORD / prompted password, mode 0600) and PREFIX.pub.`,
  flags: [
    { name: 'key', type: 'string', value: 'PEM', description: 'The plain PEM private key to import (required).' },
    {
      name: 'output-key-prefix',
      type: 'string',
      value: 'PREFIX',
      description: 'Path prefix of the key files (default: import-cosign).',
    },
    { name: 'force', type: 'boolean', description: 'Overwrite existing key files.' },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const source = flagString(args, 'key');
    if (!source) throw new UsageError('--key is required');
    const prefix = flagString(args, 'output-key-prefix') ?? 'import-cosign';
    const pem = await readInput(ctx, source, 'key file', 'pass the PEM private key to import with --key');
    const key = parseImportableKey(pem.toString('utf8'), source);
    const password = await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true });
    const pair = await encodeKeyPair(key, password);
    await writeKeyPairFiles(ctx, prefix, pair, flagBool(args, 'force'));
    reportKeyPair(ctx, prefix, pair);
    return 0;
  },
};
