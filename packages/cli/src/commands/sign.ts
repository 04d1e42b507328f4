import { basename } from 'node:path';
import { isPolicyId, isSemver, type PolicyMeta, readPolicyMeta } from '@apx/core';
import { signArtifact } from '@apx/sign';
import { auditSigning } from '../audit.js';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { type PlannedFile, writeFileSet } from '../file-set.js';
import { armInterrupts, testPause } from '../interrupt.js';
import { readInput } from '../io.js';
import { fileJson, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { DEFAULT_PRIVATE_KEY } from '../keyref.js';
import { refuseRetiredKey } from '../retired-keys.js';
import { describeEvidence, openSigning, SIGNING_FLAGS } from '../signing.js';

export const signCommand: CommandSpec = {
  name: 'sign',
  summary: 'Sign a policy artifact for one policy, version and environment: ARTIFACT.sig and ARTIFACT.sigstore.json.',
  usage:
    'ARTIFACT [--version V] [--policy-id ID] [--env ENV] [--key KEY | --keyless [--identity-token TOKEN]] [--timestamp-server-url URL]',
  details: `Writes ARTIFACT.sig (cosign's detached signature over the bytes; cosign verify-blob accepts it)
and ARTIFACT.sigstore.json (a Sigstore bundle v0.3 whose DSSE envelope carries an in-toto
statement binding the artifact's SHA-256 to its policy id, version, environment and size).
Workers in staging and production load only artifacts whose statement names exactly the
reference and environment they load, so a renamed or promoted artifact is refused.
--policy-id and --version default to the id and version apx compile embedded in the artifact
(so a compiled artifact renamed artifact.wasm still signs as what it is); a flag that disagrees
with them is refused. For a module without APX metadata, --version is required and --policy-id
defaults to the id in the file name (pb-pay-v1@1.0.0.wasm).
--keyless (or --identity-token) signs with an ephemeral key and a Fulcio certificate for the
OIDC identity of the token, logs the envelope to Rekor and writes the certificate to
ARTIFACT.pem as well (cosign sign-blob --output-certificate); the bundle carries certificate
and log entry. --timestamp-server-url adds an RFC 3161 timestamp (trusted signing time) to
the bundle, keyed or keyless. docs/operations.md, "Keyless signing".`,
  flags: [
    {
      name: 'version',
      type: 'string',
      value: 'V',
      description: 'The semantic version (default: the version apx compile embedded in the artifact).',
    },
    {
      name: 'policy-id',
      type: 'string',
      value: 'ID',
      description: 'The policy id (default: the id embedded in the artifact, else the file name ID@VERSION.wasm).',
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
      description: `The key to sign with: a cosign key file, env://VAR (the PEM in a variable) or a KMS/HSM URI (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    JSON_OUTPUT_FLAG,
    ...SIGNING_FLAGS,
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (the .wasm file to sign)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const versionFlag = flagString(args, 'version');
    if (versionFlag !== undefined && !isSemver(versionFlag))
      throw new UsageError(`--version ${versionFlag} is not a semantic version (e.g. 1.0.0)`);
    const idFlag = flagString(args, 'policy-id');
    if (idFlag !== undefined && !isPolicyId(idFlag))
      throw new UsageError(`--policy-id ${idFlag} is not a policy id (lowercase letters, digits, . _ -)`);
    const environment = environmentFlag(args);

    const artifact = await readInput(ctx, artifactPath, 'artifact', 'pass the path of the .wasm artifact to sign');
    const { meta, wasm } = embeddedMeta(artifact);
    // The id and version apx compile embedded are the defaults; a flag that disagrees is refused.
    const version = versionFlag ?? meta?.version;
    if (!version) throw new UsageError(`--version is required (${artifactPath} carries no embedded version)`);
    const fromName = /^(.+)@[^@]+\.wasm$/.exec(basename(artifactPath))?.[1];
    const policyId = idFlag ?? meta?.policy ?? fromName;
    if (!policyId) throw new UsageError('--policy-id is required (neither the artifact nor its file name says it)');
    if (!isPolicyId(policyId)) throw new UsageError(`the file name's policy id ${policyId} is not a policy id: pass --policy-id`);
    if (!wasm) {
      throw new CliError(CliErrorCode.INPUT_UNREADABLE, `invalid artifact: not a WASM file: ${artifactPath}`, {
        hint: 'sign the .wasm that apx compile wrote',
      });
    }
    if (meta && (meta.policy !== policyId || meta.version !== version)) {
      const given = [
        ...(meta.policy !== policyId ? [`--policy-id ${policyId}`] : []),
        ...(meta.version !== version ? [`--version ${version}`] : []),
      ].join(' and ');
      throw new CliError(
        CliErrorCode.INPUT_UNREADABLE,
        `refusing to sign ${artifactPath} as ${policyId}@${version}: it was compiled as ${meta.policy}@${meta.version} (${given} disagrees)`,
        {
          hint: `drop ${given} (the artifact says ${meta.policy}@${meta.version}), or compile the policy with that id and version`,
        },
      );
    }
    if (!meta)
      info(ctx, `WARNING: ${artifactPath} carries no APX metadata; the binding will not name its ABI, compiler or source`);
    armInterrupts();
    const signing = await openSigning(ctx, args);
    await refuseRetiredKey(ctx, signing.signer, environment);
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
    // Bundle, signature and certificate all or none (a keyed signature removes a stale .pem).
    await testPause(ctx, 'sign:signed');
    const files: PlannedFile[] = [
      { path: `${artifactPath}.sigstore.json`, data: signed.bundleJson },
      { path: `${artifactPath}.sig`, data: signed.signatureFileContent },
      ...(signed.certificatePem ? [{ path: `${artifactPath}.pem`, data: signed.certificatePem }] : []),
    ];
    await writeFileSet(ctx, files, signed.certificatePem ? [] : [`${artifactPath}.pem`]);
    info(ctx, `✓ Signed:    ${basename(artifactPath)}.sig`);
    if (signed.certificatePem) info(ctx, `✓ Certificate: ${basename(artifactPath)}.pem`);
    info(ctx, `✓ Bound:     ${policyId}@${version} (${environment}) in ${basename(artifactPath)}.sigstore.json`);
    if (signed.identity) info(ctx, `  identity ${signed.identity.subject} (issuer ${signed.identity.issuer})`);
    else info(ctx, `  key id ${signed.keyId}`);
    describeEvidence(ctx, signed.bundleJson);
    writeJsonResult(ctx, args, {
      reference: `${policyId}@${version}`,
      environment,
      artifact: fileJson(artifactPath, artifact),
      signature: fileJson(`${artifactPath}.sig`, signed.signatureFileContent),
      bundle: fileJson(`${artifactPath}.sigstore.json`, signed.bundleJson),
      certificate: signed.certificatePem ? fileJson(`${artifactPath}.pem`, signed.certificatePem) : null,
      keyId: signed.identity ? null : signed.keyId,
      identity: signed.identity ?? null,
    });
    return 0;
  },
};

/** The metadata `apx compile` embeds (undefined for a module without it), and whether the bytes are WASM at all. */
function embeddedMeta(bytes: Buffer): { meta: PolicyMeta | undefined; wasm: boolean } {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes);
  } catch {
    return { meta: undefined, wasm: false };
  }
  try {
    return { meta: readPolicyMeta(module), wasm: true };
  } catch {
    return { meta: undefined, wasm: true };
  }
}
