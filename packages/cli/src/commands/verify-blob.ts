import { parseBundle, parseDigestAlgorithm, SignatureVerifier, type SignatureVerifierOptions, verifyBundle } from '@apx/core';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput } from '../io.js';
import { loadPublicKey } from '../keyref.js';

export const verifyBlobCommand: CommandSpec = {
  name: 'verify-blob',
  summary: 'Verify a file against a detached signature or a Sigstore bundle with a public key.',
  usage: '--key PUB (--signature FILE | --bundle FILE) [--trusted-root FILE] BLOB',
  details: `Accepts what cosign verify-blob accepts: base64 or raw DER signatures (a trailing newline
is fine), high-S signatures, raw 64-byte r||s (IEEE P1363); rejects trailing bytes after the
DER value. Bundles: Sigstore v0.1-v0.3 (message signature or DSSE in-toto) and cosign's legacy
{"base64Signature":...} JSON; the bundle must name this blob's digest. Verification is offline by
key (like cosign's --insecure-ignore-tlog); with --trusted-root, transparency-log entries and
timestamps are verified too. Unlike cosign's CLI, the digest defaults to the key's own (SHA-384
for P-384, SHA-512 for P-521). Prints "Verified OK" on success, exit 1 otherwise.`,
  flags: [
    {
      name: 'key',
      type: 'string',
      value: 'PUB',
      description: 'The public key: a PEM file, env://VAR, a cosign private key file, or a KMS/HSM URI (required).',
    },
    { name: 'signature', type: 'string', value: 'FILE', description: 'The detached signature file (base64 or raw DER).' },
    { name: 'bundle', type: 'string', value: 'FILE', description: 'A Sigstore bundle or legacy cosign bundle.' },
    {
      name: 'signature-digest-algorithm',
      type: 'string',
      value: 'ALG',
      description: "Digest the signature covers: sha256, sha384 or sha512 (default: the key's).",
    },
    {
      name: 'trusted-root',
      type: 'string',
      value: 'FILE',
      description: "A Sigstore trusted_root.json: also verify the bundle's transparency-log entries.",
    },
    {
      name: 'insecure-ignore-tlog',
      type: 'boolean',
      description: 'Accepted for cosign compatibility; APX verifies offline unless --trusted-root is given.',
    },
  ],
  positionals: { min: 1, max: 1, names: 'BLOB (the file to verify)' },
  async run(ctx, args) {
    const blobPath = args.positionals[0] as string;
    const keyRef = flagString(args, 'key');
    if (!keyRef) throw new UsageError("--key is required (the signer's public key, e.g. keys/cosign.pub)");
    const sigPath = flagString(args, 'signature');
    const bundlePath = flagString(args, 'bundle');
    if (!sigPath && !bundlePath) throw new UsageError('pass --signature FILE or --bundle FILE');
    const options: SignatureVerifierOptions = {};
    const alg = flagString(args, 'signature-digest-algorithm');
    if (alg) options.digestAlgorithm = parseDigestAlgorithm(alg);

    const verifier = new SignatureVerifier(await loadPublicKey(ctx, keyRef), options);
    const blob = await readInput(ctx, blobPath, 'file', 'pass the path of the file to verify');
    if (sigPath) {
      const sig = await readInput(
        ctx,
        sigPath,
        'signature file',
        'pass the .sig file written by apx sign-blob or cosign sign-blob',
      );
      verifier.verify(blob, sig);
    }
    if (bundlePath) {
      const text = (
        await readInput(ctx, bundlePath, 'bundle file', 'pass the .sigstore.json bundle written beside the artifact')
      ).toString('utf8');
      const rootPath = flagString(args, 'trusted-root');
      const trustedRoot = rootPath
        ? parseJsonFile(
            (await readInput(ctx, rootPath, 'trusted root file', 'pass a Sigstore trusted_root.json')).toString('utf8'),
            rootPath,
          )
        : undefined;
      const result = verifyBundle(
        parseBundle(text, bundlePath),
        blob,
        verifier,
        trustedRoot === undefined ? {} : { trustedRoot },
      );
      if (result.tlogEntriesUnchecked > 0) {
        info(
          ctx,
          `WARNING: ${result.tlogEntriesUnchecked} transparency-log entr${result.tlogEntriesUnchecked === 1 ? 'y' : 'ies'} not checked (offline verification by key; pass --trusted-root to check)`,
        );
      }
    }
    info(ctx, 'Verified OK');
    return 0;
  },
};

function parseJsonFile(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(CliErrorCode.INPUT_UNREADABLE, `trusted root file ${path} is not JSON`, {
      hint: 'pass a Sigstore trusted_root.json',
    });
  }
}
