import { isKmsRef } from '@apx/kms/key-ref';
import { generateKeyPair, writeFileAtomic } from '@apx/sign';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { resolvePath } from '../io.js';
import { passwordProvider } from '../password.js';
import { reportKeyPair, writeKeyPairFiles } from './key-files.js';

export const generateKeyPairCommand: CommandSpec = {
  name: 'generate-key-pair',
  summary: "Create an ECDSA P-256 key pair in cosign's format: PREFIX.key (encrypted, mode 0600) and PREFIX.pub.",
  usage: '[--output-key-prefix PREFIX] [--force] [--kms URI]',
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
    {
      name: 'kms',
      type: 'string',
      value: 'URI',
      description:
        'Create the key in a KMS or HSM instead (hashivault://KEY, awskms://[ENDPOINT]/alias/NAME, gcpkms://.../cryptoKeys/K, pkcs11:...); only PREFIX.pub is written, as cosign does.',
    },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const prefix = flagString(args, 'output-key-prefix') ?? 'keys/cosign';
    const force = flagBool(args, 'force');
    const kms = flagString(args, 'kms');
    if (kms) {
      if (!isKmsRef(kms)) throw new UsageError(`--kms ${kms}: expected a KMS or HSM key reference, not a file`);
      const { createKmsKey } = await import('@apx/kms');
      const key = await createKmsKey(kms, ctx.env);
      const pub = await key.publicKey().finally(() => key.close());
      await writeFileAtomic(resolvePath(ctx, `${prefix}.pub`), pub.toPem(), { overwrite: force });
      info(ctx, `Created ${key.keyRef}; public key written to ${prefix}.pub`);
      info(ctx, `Key id: ${pub.keyId}`);
      return 0;
    }
    const password = await passwordProvider(ctx)({ keyPath: `${prefix}.key`, confirm: true });
    const pair = await generateKeyPair(password);
    await writeKeyPairFiles(ctx, prefix, pair, force);
    reportKeyPair(ctx, prefix, pair);
    return 0;
  },
};
