import {
  type ArtifactInput,
  isKeylessBundle,
  type ParsedBundle,
  parseBundle,
  predicateOf,
  predicateTypeOf,
  publicGoodTrustedRoot,
  SignatureVerifier,
  verifyBundle,
  verifyKeylessBundle,
} from '@apx/core';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { IDENTITY_FLAG_SPECS, identityFlagValues, identityFromFlags, readTrustedRoot } from '../identity-flags.js';
import { readInput } from '../io.js';
import { fileJson, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { loadPublicKey } from '../keyref.js';

const DIGEST_ARGUMENT = /^sha256:([0-9a-fA-F]{64})$/;

export const verifyAttestationCommand: CommandSpec = {
  name: 'verify-attestation',
  usageExitCode: 1, // as cosign verify-blob-attestation: 0 verified, 1 anything else
  summary:
    'Verify a signed in-toto attestation (SBOM, provenance...) over a file or its sha256: digest, with a key or keylessly.',
  usage:
    '[--type TYPE] --bundle FILE (--key PUB | --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER) [--trusted-root FILE] [--insecure-ignore-tlog] (BLOB | sha256:HEX)',
  details: `Speaks cosign verify-blob-attestation. The bundle is a Sigstore bundle whose DSSE envelope
carries an in-toto statement (Statement v1, or v0.1 as older cosign attest-blob writes it): its
signature must verify (with --key, or keylessly: the Fulcio certificate chains to the trusted root
and names the identity given), one of its subjects must have BLOB's sha256 digest, and its
predicate type must be --type's: slsaprovenance (SLSA v0.2), slsaprovenance1 (SLSA v1),
cyclonedx, spdx/spdxjson, link, vuln, openvex, custom (the default, as cosign's), or a URI.
apx compile writes <artifact>.wasm.sbom.sigstore.json (--type cyclonedx) and
<artifact>.wasm.provenance.sigstore.json (--type slsaprovenance1). Transparency-log entries are
checked as verify-blob checks them (--insecure-ignore-tlog skips them with --key). Nothing is
fetched. Prints "Verified OK" on stderr; exit 0 verified, 1 refused or bad usage.
--json prints the verified statement's subject, predicate type and signer.`,
  flags: [
    {
      name: 'type',
      type: 'string',
      value: 'TYPE',
      description:
        'The predicate type: slsaprovenance|slsaprovenance02|slsaprovenance1|cyclonedx|spdx|spdxjson|link|vuln|openvex|custom or a URI (default: custom).',
    },
    {
      name: 'key',
      type: 'string',
      value: 'PUB',
      description: 'The public key: a PEM file, env://VAR, a cosign private key file, or a KMS/HSM URI. Without it, keyless.',
    },
    { name: 'bundle', type: 'string', value: 'FILE', description: 'The attestation: a Sigstore bundle with a DSSE envelope.' },
    {
      name: 'trusted-root',
      type: 'string',
      value: 'FILE',
      description:
        'A Sigstore trusted_root.json. Keyless: the default is the public-good root; with --key: also verify log entries and timestamps.',
    },
    ...IDENTITY_FLAG_SPECS,
    {
      name: 'insecure-ignore-tlog',
      type: 'boolean',
      description: "With --key: do not check the bundle's transparency-log entries (verify by key alone).",
    },
    JSON_OUTPUT_FLAG,
  ],
  positionals: { min: 1, max: 1, names: 'BLOB (the file the attestation is about, or sha256:<hex>)' },
  async run(ctx, args) {
    const target = args.positionals[0] as string;
    const typeFlag = flagString(args, 'type') ?? 'custom';
    const predicateType = predicateTypeOf(typeFlag);
    if (predicateType === undefined) {
      throw new UsageError(
        `invalid predicate type: ${typeFlag} (use slsaprovenance, slsaprovenance1, cyclonedx, spdxjson, custom... or a URI)`,
      );
    }
    const bundlePath = flagString(args, 'bundle');
    if (!bundlePath)
      throw new UsageError('pass --bundle FILE (the attestation bundle, e.g. <artifact>.wasm.provenance.sigstore.json)');
    const keyRef = flagString(args, 'key');
    const identitySpec = identityFlagValues(args);
    if (keyRef && Object.keys(identitySpec).length > 0) {
      throw new UsageError(
        'pass either --key (a key-signed attestation) or the --certificate-* identity flags (keyless), not both',
      );
    }
    if (!keyRef) {
      if (identitySpec.subject === undefined && identitySpec.subjectRegExp === undefined)
        throw new UsageError(
          '--key is required, or --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp) for a keyless attestation',
        );
      if (identitySpec.issuer === undefined && identitySpec.issuerRegExp === undefined)
        throw new UsageError(
          '--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for keyless verification (or pass --key)',
        );
    }
    const identity = keyRef ? undefined : identityFromFlags(identitySpec);
    const blob = await readTarget(ctx, target);
    const text = (
      await readInput(
        ctx,
        bundlePath,
        'attestation bundle',
        'pass the attestation bundle, e.g. <artifact>.wasm.sbom.sigstore.json',
      )
    ).toString('utf8');
    const parsed = parseBundle(text, bundlePath);
    if (parsed.format !== 'sigstore' || parsed.content.kind !== 'dsse') {
      throw new UsageError(`${bundlePath} is a signature, not an attestation: verify it with apx verify-blob`);
    }
    const rootPath = flagString(args, 'trusted-root');
    let statement: Record<string, unknown> | undefined;
    let signer: { keyId: string | null; identity: unknown };
    if (keyRef) {
      if (isKeylessBundle(parsed))
        throw new UsageError(
          'this attestation is signed keylessly: verify it with --certificate-identity and --certificate-oidc-issuer',
        );
      const publicKey = await loadPublicKey(ctx, keyRef);
      const ignoreTlog = args.flags['insecure-ignore-tlog'] === true;
      const trustedRoot = rootPath
        ? await readTrustedRoot(ctx, rootPath)
        : parsed.tlogEntries > 0 && !ignoreTlog
          ? publicGoodTrustedRoot()
          : undefined;
      const result = verifyBundle(
        parsed,
        blob,
        new SignatureVerifier(publicKey),
        trustedRoot === undefined ? {} : { trustedRoot, requireTlog: !ignoreTlog },
      );
      if (result.tlogEntriesUnchecked > 0)
        info(ctx, `WARNING: ${result.tlogEntriesUnchecked} transparency-log entries not checked (--insecure-ignore-tlog)`);
      statement = result.statement;
      signer = { keyId: publicKey.keyId, identity: null };
    } else {
      if (!isKeylessBundle(parsed))
        throw new UsageError('this attestation is signed with a key, not a certificate: verify it with --key');
      const trustedRoot = rootPath ? await readTrustedRoot(ctx, rootPath) : publicGoodTrustedRoot();
      const verified = verifyKeylessBundle(parsed as ParsedBundle, blob, {
        trustedRoot,
        identities: [identity as NonNullable<typeof identity>],
      });
      statement = verified.statement;
      signer = { keyId: null, identity: verified.identity };
    }
    // verifyBundle checked the envelope's signature, then that a subject names this blob.
    predicateOf(statement ?? {}, predicateType);
    info(ctx, 'Verified OK');
    writeJsonResult(ctx, args, {
      verified: true,
      blob:
        blob instanceof Uint8Array ? fileJson(target, blob) : { path: null, sha256: Buffer.from(blob.digest).toString('hex') },
      predicateType,
      statementType: statement?._type ?? null,
      subject: statement?.subject ?? null,
      ...signer,
      bundle: bundlePath,
    });
    return 0;
  },
};

/** The file's bytes, or its digest when given as sha256:<hex> (cosign's digest form). */
async function readTarget(ctx: CliContext, target: string): Promise<ArtifactInput> {
  const m = DIGEST_ARGUMENT.exec(target);
  if (m?.[1]) return { algorithm: 'sha256', digest: Buffer.from(m[1], 'hex') };
  if (target.startsWith('sha256:')) throw new UsageError(`${target} is not a sha256 digest: write sha256: and 64 hex digits`);
  return readInput(ctx, target, 'file', 'pass the path of the file the attestation is about, or sha256:<hex>');
}
