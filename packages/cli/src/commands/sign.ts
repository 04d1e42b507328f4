import { basename } from 'node:path';
import { isPolicyId, isSemver, type PolicyMeta, readPolicyMeta } from '@apx/core';
import { signArtifact, writeFileAtomic } from '@apx/sign';
import { auditSigning } from '../audit.js';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput, resolvePath } from '../io.js';
import { DEFAULT_PRIVATE_KEY } from '../keyref.js';
import { describeEvidence, openSigning, SIGNING_FLAGS, writeCertificateFile } from '../signing.js';

export const signCommand: CommandSpec = {
  name: 'sign',
  summary: 'Sign a policy artifact for one policy, version and environment: ARTIFACT.sig and ARTIFACT.sigstore.json.',
  usage:
    'ARTIFACT --version V [--policy-id ID] [--env ENV] [--key KEY | --keyless [--identity-token TOKEN]] [--timestamp-server-url URL]',
  details: `Writes ARTIFACT.sig (cosign's detached signature over the bytes; cosign verify-blob accepts it)
and ARTIFACT.sigstore.json (a Sigstore bundle v0.3 whose DSSE envelope carries an in-toto
statement binding the artifact's SHA-256 to its policy id, version, environment and size).
Workers in staging and production load only artifacts whose statement names exactly the
reference and environment they load, so a renamed or promoted artifact is refused.
--policy-id defaults to the id in the file name (pb-pay-v1@1.0.0.wasm).
--keyless (or --identity-token) signs with an ephemeral key and a Fulcio certificate for the
OIDC identity of the token, logs the envelope to Rekor and writes the certificate to
ARTIFACT.pem as well (cosign sign-blob --output-certificate); the bundle carries certificate
and log entry. --timestamp-server-url adds an RFC 3161 timestamp (trusted signing time) to
the bundle, keyed or keyless. docs/operations.md, "Keyless signing".`,
  flags: [
    { name: 'version', type: 'string', value: 'V', description: "The artifact's semantic version (required)." },
    {
      name: 'policy-id',
      type: 'string',
      value: 'ID',
      description: 'The policy id (default: from the file name ID@VERSION.wasm).',
    },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description: 'The environment it may run in: dev, staging or production (default: dev).',
    },
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The key to sign with: a cosign key file or a KMS/HSM URI (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    ...SIGNING_FLAGS,
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (the .wasm file to sign)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const version = flagString(args, 'version');
    if (!version) throw new UsageError('--version is required');
    if (!isSemver(version)) throw new UsageError(`--version ${version} is not a semantic version (e.g. 1.0.0)`);
    const fromName = /^(.+)@[^@]+\.wasm$/.exec(basename(artifactPath))?.[1];
    const policyId = flagString(args, 'policy-id') ?? fromName;
    if (!policyId) throw new UsageError('--policy-id is required (the file name does not say it)');
    if (!isPolicyId(policyId))
      throw new UsageError(`--policy-id ${policyId} is not a policy id (lowercase letters, digits, . _ -)`);
    const environment = environmentFlag(args);

    const artifact = await readInput(ctx, artifactPath, 'artifact', 'pass the path of the .wasm artifact to sign');
    const meta = embeddedMeta(artifact, artifactPath);
    if (meta && (meta.policy !== policyId || meta.version !== version)) {
      throw new CliError(
        CliErrorCode.INPUT_UNREADABLE,
        `refusing to sign ${artifactPath} as ${policyId}@${version}: it was compiled as ${meta.policy}@${meta.version}`,
        { hint: 'sign an artifact under the name and version it was compiled with' },
      );
    }
    if (!meta)
      info(ctx, `WARNING: ${artifactPath} carries no APX metadata; the binding will not name its ABI, compiler or source`);
    const signing = await openSigning(ctx, args);
    const signed = await signArtifact(
      signing.signer,
      artifact,
      {
        policyId,
        version,
        environment,
        abiVersion: meta?.abi ?? null,
        compilerVersion: meta?.compiler ?? null,
        sourceDigest: meta ? `sha256:${meta.sourceSha256}` : null,
      },
      new Date(),
      { witnesses: signing.witnesses('dsse') },
    );
    await auditSigning(ctx, signing.signer, 'sign', artifact, { reference: `${policyId}@${version}`, environment });
    const files: Array<[string, string]> = [
      [`${artifactPath}.sigstore.json`, signed.bundleJson],
      [`${artifactPath}.sig`, signed.signatureFileContent],
    ];
    const write = (path: string, data: string) =>
      writeFileAtomic(resolvePath(ctx, path), data, { overwrite: true, describe: { path, cwd: ctx.cwd } });
    for (const [path, data] of files) await write(path, data);
    await writeCertificateFile(ctx, artifactPath, signed.certificatePem, write);
    info(ctx, `✓ Signed:    ${basename(artifactPath)}.sig`);
    if (signed.certificatePem) info(ctx, `✓ Certificate: ${basename(artifactPath)}.pem`);
    info(ctx, `✓ Bound:     ${policyId}@${version} (${environment}) in ${basename(artifactPath)}.sigstore.json`);
    if (signed.identity) info(ctx, `  identity ${signed.identity.subject} (issuer ${signed.identity.issuer})`);
    else info(ctx, `  key id ${signed.keyId}`);
    describeEvidence(ctx, signed.bundleJson);
    return 0;
  },
};

/** The metadata `apx compile` embeds, or undefined for a module without it; not WASM is an error. */
function embeddedMeta(bytes: Buffer, path: string): PolicyMeta | undefined {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes);
  } catch {
    throw new CliError(CliErrorCode.INPUT_UNREADABLE, `invalid artifact: not a WASM file: ${path}`, {
      hint: 'sign the .wasm that apx compile wrote',
    });
  }
  try {
    return readPolicyMeta(module);
  } catch {
    return undefined;
  }
}
