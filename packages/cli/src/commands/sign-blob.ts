import { signBlob } from '@apx/sign';
import { auditSigning } from '../audit.js';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { type PlannedFile, writeFileSet } from '../file-set.js';
import { readInput } from '../io.js';
import { fileJson, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { DEFAULT_PRIVATE_KEY } from '../keyref.js';
import { describeSigning, openSigning, SIGNING_FLAGS, wantsKeyless } from '../signing.js';

export const signBlobCommand: CommandSpec = {
  name: 'sign-blob',
  summary: 'Sign a file with a cosign-compatible key, or keylessly: a detached signature and, optionally, a Sigstore bundle.',
  usage:
    '[--key KEY | --keyless [--identity-token TOKEN]] [--output-signature FILE] [--output-certificate FILE] [--bundle FILE] BLOB',
  details: `The signature is over the whole blob: ECDSA with the curve's hash (SHA-256 for P-256,
SHA-384 for P-384, SHA-512 for P-521), RSA PKCS#1 v1.5 with SHA-256, or pure Ed25519, as
cosign 2.6+ signs. It is base64 of the DER value: written to --output-signature without a
trailing newline, or printed to stdout with one. --bundle writes a Sigstore bundle v0.3 with
a message signature, the key id as publicKey.hint and no transparency-log entry (offline).
--timestamp-server-url adds an RFC 3161 timestamp of the signature to the bundle.
--keyless (or --identity-token) signs with an ephemeral key and a Fulcio certificate for the
OIDC identity of the token, logs the signature to Rekor, and puts certificate and log entry in
the bundle; --output-certificate writes the certificate (PEM). docs/operations.md, "Keyless signing".
BLOB may be - for stdin. The files written are written all or none (Ctrl-C included).
--json prints one JSON document on stdout (the signature in it) instead of the bare signature.`,
  flags: [
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The key to sign with: a cosign key file, env://VAR (the PEM in a variable) or a KMS/HSM URI (gcpkms://, awskms://, hashivault://, pkcs11:) (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    {
      name: 'output-signature',
      type: 'string',
      value: 'FILE',
      description: 'Write the base64 signature to FILE (no trailing newline).',
    },
    { name: 'output', type: 'string', value: 'FILE', description: 'Deprecated alias of --output-signature (as in cosign).' },
    {
      name: 'output-certificate',
      type: 'string',
      value: 'FILE',
      description: 'Keyless: write the Fulcio signing certificate (PEM) to FILE.',
    },
    { name: 'bundle', type: 'string', value: 'FILE', description: 'Also write a Sigstore bundle v0.3 to FILE.' },
    JSON_OUTPUT_FLAG,
    ...SIGNING_FLAGS,
  ],
  positionals: { min: 1, max: 1, names: 'BLOB (the file to sign)' },
  async run(ctx, args) {
    const blobPath = args.positionals[0] as string;
    const outSig = flagString(args, 'output-signature') ?? flagString(args, 'output');
    const outBundle = flagString(args, 'bundle');
    const outCert = flagString(args, 'output-certificate');
    if (outCert && !wantsKeyless(args)) throw new UsageError('--output-certificate is for keyless signing: add --keyless');
    const blob = await readInput(ctx, blobPath, 'file', 'pass the path of the file to sign');
    const signing = await openSigning(ctx, args);
    const signed = await signBlob(signing.signer, blob, { witnesses: signing.witnesses('message') });
    await auditSigning(ctx, signing.signer, 'sign-blob', blob);
    await describeSigning(ctx, signing, signed);
    // Signature, bundle and certificate all or none (Ctrl-C included).
    const files: PlannedFile[] = [];
    if (outCert && signed.certificatePem)
      files.push({ path: outCert, data: signed.certificatePem, setting: '--output-certificate', what: 'certificate file' });
    if (outSig)
      files.push({ path: outSig, data: signed.signatureFileContent, setting: '--output-signature', what: 'signature file' });
    if (outBundle) files.push({ path: outBundle, data: signed.bundleJson, setting: '--bundle', what: 'bundle file' });
    if (files.length > 0) await writeFileSet(ctx, files);
    if (outCert && signed.certificatePem) info(ctx, `Wrote certificate to file ${outCert}`);
    if (outSig) info(ctx, `Wrote signature to file ${outSig}`);
    else if (!flagBool(args, 'json')) ctx.stdout.write(`${signed.signatureFileContent}\n`);
    if (outBundle) info(ctx, `Wrote bundle to file ${outBundle}`);
    writeJsonResult(ctx, args, {
      blob: blobPath === '-' ? { path: '-', sha256: fileJson('-', blob).sha256 } : fileJson(blobPath, blob),
      signature: { path: outSig ?? null, base64: signed.signatureFileContent },
      bundle: outBundle ? fileJson(outBundle, signed.bundleJson) : null,
      certificate: outCert && signed.certificatePem ? fileJson(outCert, signed.certificatePem) : null,
      keyId: signed.identity ? null : signed.publicKey.keyId,
      identity: signed.identity ?? null,
    });
    return 0;
  },
};
