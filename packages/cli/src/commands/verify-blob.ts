import {
  type ArtifactInput,
  isKeylessBundle,
  parseBundle,
  parseDigestAlgorithm,
  publicGoodTrustedRoot,
  SignatureVerifier,
  type SignatureVerifierOptions,
  verifyBundle,
  verifyKeylessBundle,
} from '@apx/core';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { IDENTITY_FLAG_SPECS, identityFlagValues, identityFromFlags, readTrustedRoot } from '../identity-flags.js';
import { readInput, readOptional } from '../io.js';
import { fileJson, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { loadPublicKey } from '../keyref.js';

const DIGEST_ARGUMENT = /^sha256:([0-9a-fA-F]{64})$/;

export const verifyBlobCommand: CommandSpec = {
  name: 'verify-blob',
  usageExitCode: 1, // as cosign verify-blob: 0 verified, 1 anything else
  summary: 'Verify a file (or its sha256: digest) against a signature or a Sigstore bundle, with a key or keylessly.',
  usage:
    '(--key PUB (--signature FILE | --bundle FILE) | --bundle FILE --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER) [--trusted-root FILE] (BLOB | sha256:HEX)',
  details: `Speaks cosign verify-blob. With --key: accepts base64 or raw DER signatures (a trailing newline
is fine), high-S signatures, raw 64-byte r||s (IEEE P1363); rejects trailing bytes after the DER
value. Bundles: Sigstore v0.1-v0.3 (message signature or DSSE in-toto) and cosign's legacy
{"base64Signature":...} JSON; the bundle must name this blob's digest. As with cosign, the
transparency-log entries a keyed bundle carries are verified, with its timestamps, against
--trusted-root or else the embedded public-good root; --insecure-ignore-tlog verifies by key
alone. A bundle with no log entry (apx sign's offline signature) is verified by key alone.
Unlike cosign's CLI, the digest defaults to the key's own
(SHA-384 for P-384, SHA-512 for P-521).
Without --key, verification is keyless: the bundle's Fulcio certificate must chain to the trusted
root (--trusted-root, or the Sigstore public-good root embedded in APX), carry an SCT, be valid at
the time its Rekor entry or RFC 3161 timestamp proves, and name the identity given by
--certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp), both required; patterns
must be anchored (^...$). Nothing is fetched: verification is offline.
In place of BLOB, sha256:<hex> verifies against the file's digest (cosign's digest form).
Prints "Verified OK" on stderr on success; exit 0 verified, 1 refused, 2 usage.`,
  flags: [
    {
      name: 'key',
      type: 'string',
      value: 'PUB',
      description: 'The public key: a PEM file, env://VAR, a cosign private key file, or a KMS/HSM URI. Without it, keyless.',
    },
    {
      name: 'signature',
      type: 'string',
      value: 'SIG',
      description: 'The detached signature: a file (base64 or raw DER), or the base64 signature itself (as cosign takes it).',
    },
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
      description:
        'A Sigstore trusted_root.json (every entry needs a start of validity). Keyless: the default is the public-good root; with --key: also verify log entries and timestamps.',
    },
    ...IDENTITY_FLAG_SPECS,
    {
      name: 'insecure-ignore-tlog',
      type: 'boolean',
      description:
        "With --key: do not check the bundle's transparency-log entries (verify by key alone; with --trusted-root a timestamp still dates the signature).",
    },
    JSON_OUTPUT_FLAG,
    { name: 'offline', type: 'boolean', description: 'Accepted for cosign compatibility: APX always verifies offline.' },
    {
      name: 'use-signed-timestamps',
      type: 'boolean',
      description: 'Accepted for cosign compatibility: verified RFC 3161 timestamps are always used.',
    },
  ],
  positionals: { min: 1, max: 1, names: 'BLOB (the file to verify, or sha256:<hex>)' },
  async run(ctx, args) {
    const target = args.positionals[0] as string;
    const keyRef = flagString(args, 'key');
    const sigPath = flagString(args, 'signature');
    const bundlePath = flagString(args, 'bundle');
    if (!keyRef) return verifyKeyless(ctx, args, target, bundlePath);
    const identityFlags = Object.keys(identityFlagValues(args));
    if (identityFlags.length > 0) {
      // A key-signed bundle has no certificate to hold an identity to: the identity asked
      // for could not be checked, so the request is refused rather than half-honoured.
      throw new UsageError(
        'pass either --key (a key-signed bundle) or the --certificate-* identity flags (a keyless bundle), not both',
      );
    }
    if (!sigPath && !bundlePath) throw new UsageError('pass --signature FILE or --bundle FILE');
    const options: SignatureVerifierOptions = {};
    const alg = flagString(args, 'signature-digest-algorithm');
    if (alg) options.digestAlgorithm = parseDigestAlgorithm(alg);

    const publicKey = await loadPublicKey(ctx, keyRef);
    const verifier = new SignatureVerifier(publicKey, options);
    const blob = await readTarget(ctx, target);
    if (sigPath) {
      const sig = await readSignature(ctx, sigPath);
      if (blob instanceof Uint8Array) verifier.verify(blob, sig);
      else verifier.verifyDigest(blob.algorithm, blob.digest, sig);
    }
    if (bundlePath) {
      const text = (
        await readInput(ctx, bundlePath, 'bundle file', 'pass the .sigstore.json bundle written beside the artifact')
      ).toString('utf8');
      const rootPath = flagString(args, 'trusted-root');
      const ignoreTlog = args.flags['insecure-ignore-tlog'] === true;
      const parsed = parseBundle(text, bundlePath);
      // As cosign: transparency-log entries a bundle carries are checked, against --trusted-root
      // or else the embedded public-good root, unless --insecure-ignore-tlog. A bundle without
      // any (a private key's offline signature, as apx sign writes) is verified by key alone.
      const logged = parsed.format === 'sigstore' && parsed.tlogEntries > 0;
      const trustedRoot = rootPath
        ? await readTrustedRoot(ctx, rootPath)
        : logged && !ignoreTlog
          ? publicGoodTrustedRoot()
          : undefined;
      const result = verifyBundle(
        parsed,
        blob,
        verifier,
        trustedRoot === undefined ? {} : { trustedRoot, requireTlog: !ignoreTlog },
      );
      if (result.tlogEntriesUnchecked > 0) {
        info(
          ctx,
          `WARNING: ${result.tlogEntriesUnchecked} transparency-log entr${result.tlogEntriesUnchecked === 1 ? 'y' : 'ies'} not checked (${ignoreTlog ? '--insecure-ignore-tlog' : "a legacy cosign bundle's Rekor bundle is not verified"})`,
        );
      }
    }
    info(ctx, 'Verified OK');
    writeJsonResult(ctx, args, {
      verified: true,
      blob: targetJson(target, blob),
      keyId: publicKey.keyId,
      identity: null,
      signature: sigPath ?? null,
      bundle: bundlePath ?? null,
    });
    return 0;
  },
};

async function verifyKeyless(ctx: CliContext, args: ParsedArgs, target: string, bundlePath: string | undefined): Promise<number> {
  const spec = identityFlagValues(args);
  const anyIdentityFlag = Object.keys(spec).length > 0;
  if (!bundlePath) {
    throw new UsageError(
      anyIdentityFlag
        ? 'keyless verification needs --bundle FILE (the Sigstore bundle with the certificate)'
        : "--key is required (the signer's public key, e.g. keys/cosign.pub), or --bundle with --certificate-identity and --certificate-oidc-issuer for keyless verification",
    );
  }
  if (spec.subject === undefined && spec.subjectRegExp === undefined) {
    throw new UsageError(
      '--certificate-identity or --certificate-identity-regexp is required for keyless verification (or pass --key)',
    );
  }
  if (spec.issuer === undefined && spec.issuerRegExp === undefined) {
    throw new UsageError(
      '--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for keyless verification (or pass --key)',
    );
  }
  const identity = identityFromFlags(spec);
  const blob = await readTarget(ctx, target);
  const text = (
    await readInput(ctx, bundlePath, 'bundle file', 'pass the .sigstore.json bundle written beside the artifact')
  ).toString('utf8');
  const parsed = parseBundle(text, bundlePath);
  if (parsed.format === 'cosign-legacy') {
    throw new UsageError(
      'this is a legacy cosign bundle ({"base64Signature": ...}): keyless verification needs a Sigstore bundle v0.1-v0.3 (cosign sign-blob --new-bundle-format); with --key it verifies by key',
    );
  }
  if (!isKeylessBundle(parsed)) {
    throw new UsageError('this bundle is signed with a key, not a certificate: verify it with --key');
  }
  const rootPath = flagString(args, 'trusted-root');
  const trustedRoot = rootPath ? await readTrustedRoot(ctx, rootPath) : publicGoodTrustedRoot();
  const verified = verifyKeylessBundle(parsed, blob, { trustedRoot, identities: [identity] });
  info(ctx, 'Verified OK');
  writeJsonResult(ctx, args, {
    verified: true,
    blob: targetJson(target, blob),
    keyId: null,
    identity: verified.identity,
    signature: null,
    bundle: bundlePath,
  });
  return 0;
}

const BASE64_SIGNATURE = /^[A-Za-z0-9+/]{16,}={0,2}$/;

/**
 * `--signature`: a file, or (as cosign takes it) the base64 signature itself. A file of that name
 * wins; text that is not a file and not base64 is reported as a missing file.
 */
async function readSignature(ctx: CliContext, value: string): Promise<Buffer> {
  const hint = 'pass the .sig file written by apx sign-blob or cosign sign-blob, or the base64 signature itself';
  const file = await readOptional(ctx, value, 'signature file', hint);
  if (file !== undefined) return file;
  if (BASE64_SIGNATURE.test(value.trim())) return Buffer.from(value.trim(), 'utf8');
  return readInput(ctx, value, 'signature file', hint);
}

/** The file's bytes, or its digest when given as sha256:<hex>. */
async function readTarget(ctx: CliContext, target: string): Promise<ArtifactInput> {
  const m = DIGEST_ARGUMENT.exec(target);
  if (m?.[1]) return { algorithm: 'sha256', digest: Buffer.from(m[1], 'hex') };
  if (target.startsWith('sha256:')) {
    throw new UsageError(`${target} is not a sha256 digest: write sha256: and 64 hex digits`);
  }
  return readInput(ctx, target, 'file', 'pass the path of the file to verify, or sha256:<hex>');
}

/** `{ path, sha256 }` of what was verified (a file, or the digest given). */
function targetJson(target: string, blob: ArtifactInput): { path: string | null; sha256: string } {
  if (blob instanceof Uint8Array) return fileJson(target, blob);
  return { path: null, sha256: Buffer.from(blob.digest).toString('hex') };
}
