import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { sha256Hex } from '@apx/core';
import { fileError } from '@apx/core/os-error';
import type { CompiledPolicy, PolicyErrorCode } from '@apx/policy';
import { type ArtifactSignature, isKeyless, signArtifact } from '@apx/sign';
import {
  type ArtifactAttestations,
  attestArtifact,
  attestationFiles,
  buildContext,
  type SourceFile,
  sbomLibraries,
} from '../attest/index.js';
import { auditSigning } from '../audit.js';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { type PlannedFile, writeFileSet } from '../file-set.js';
import { armInterrupts, testPause } from '../interrupt.js';
import { readInput, resolvePath } from '../io.js';
import { fileJson, humanContext, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';
import { DEFAULT_PRIVATE_KEY } from '../keyref.js';
import { refuseRetiredKey } from '../retired-keys.js';
import { describeEvidence, openSigning, SIGNING_FLAGS, type Signing } from '../signing.js';
import { openPublishStore, publishToStore } from './publish.js';

/**
 * The one place a compiled policy is signed: cosign's signature over the bytes, and the
 * statement binding them to name, version, environment, ABI, compiler and source digest.
 */
function signPolicyArtifact(signing: Signing, compiled: CompiledPolicy, environment: string): Promise<ArtifactSignature> {
  return signArtifact(
    signing.signer,
    compiled.wasm,
    {
      policyId: compiled.meta.policy,
      version: compiled.meta.version,
      environment,
      abiVersion: compiled.meta.abi,
      compilerVersion: compiled.meta.compiler,
      sourceDigest: `sha256:${compiled.meta.sourceSha256}`,
    },
    new Date(),
    { witnesses: signing.witnesses('dsse') },
  );
}

/** The source file each compiled policy came from (for its SBOM and provenance). */
const SOURCES = new WeakMap<CompiledPolicy, SourceFile>();

/** A source path as attestations name it: relative to the working directory when inside it. */
function sourcePath(ctx: CliContext, file: string): string {
  const abs = resolvePath(ctx, file);
  const rel = relative(ctx.cwd, abs);
  return (rel.startsWith('..') || isAbsolute(rel) ? abs : rel).split(sep).join('/');
}

// The compiler (YAML, CEL, wabt) loads when a command compiles, not at every `apx` start.
const loadPolicy = () => import('@apx/policy');

/** Compiles every source; prints every problem of every file, then fails once. */
async function compileAll(ctx: CliContext, files: string[]): Promise<CompiledPolicy[]> {
  const { compilePolicy, PolicyCheckError, PolicyError, PolicyErrorCode } = await loadPolicy();
  const compiled: CompiledPolicy[] = [];
  let problems = 0;
  let firstCode: PolicyErrorCode | undefined;
  for (const file of files) {
    const bytes = await readInput(ctx, file, 'policy file', 'pass the path of an apx/v1 policy YAML file');
    const text = bytes.toString('utf8');
    try {
      const c = await compilePolicy(text, file);
      SOURCES.set(c, { path: sourcePath(ctx, file), sha256: sha256Hex(bytes), canonicalSha256: c.meta.sourceSha256 });
      compiled.push(c);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      for (const line of err.lines()) ctx.stderr.write(`${line}\n`);
      problems += err.problems.length;
      firstCode ??= err.code;
    }
  }
  if (problems > 0) {
    throw new PolicyCheckError(
      firstCode ?? PolicyErrorCode.SCHEMA_VALUE,
      `${problems} problem${problems === 1 ? '' : 's'}; no artifact written`,
      {
        hint: 'fix the policy source; docs/policy-language.md describes apx/v1',
      },
    );
  }
  const names = new Set<string>();
  for (const c of compiled) {
    if (names.has(c.fileName)) throw new UsageError(`two sources compile to ${c.fileName}`);
    names.add(c.fileName);
  }
  return compiled;
}

async function check(ctx: CliContext, artifactPath: string, sourcePath: string): Promise<number> {
  const artifact = await readInput(ctx, artifactPath, 'artifact', 'pass the .wasm file to compare');
  const [rebuilt] = await compileAll(ctx, [sourcePath]);
  if (!rebuilt) return 1;
  const { PolicyCheckError, PolicyErrorCode } = await loadPolicy();
  const want = `sha256:${sha256Hex(artifact)}`;
  const got = `sha256:${sha256Hex(rebuilt.wasm)}`;
  if (want !== got) {
    throw new PolicyCheckError(
      PolicyErrorCode.ARTIFACT_MISMATCH,
      `rebuild of ${sourcePath} differs from ${artifactPath}: ${got} != ${want}`,
      {
        hint: `the artifact was not built from this source with ${rebuilt.meta.compiler}; run apx inspect on it to see what it was built from`,
      },
    );
  }
  ctx.stdout.write(`✓ Identical: ${artifactPath} (${want})\n`);
  return 0;
}

export const compileCommand: CommandSpec = {
  name: 'compile',
  summary: 'Compile apx/v1 policy YAML to signed WebAssembly artifacts (<name>@<version>.wasm).',
  usage: '[--out DIR] [--key KEY | --keyless [--identity-token TOKEN] | --no-sign] FILE...   |   --check ARTIFACT SOURCE',
  details: `Writes <name>@<version>.wasm, its signature .wasm.sig (base64, as cosign sign-blob) and a
Sigstore bundle .wasm.sigstore.json into DIR, with two signed attestations: a CycloneDX 1.6
SBOM (.wasm.sbom.sigstore.json) and SLSA provenance v1 (.wasm.provenance.sigstore.json), all or none (Ctrl-C included: the files go to
temporary names, then are renamed into place, each .wasm last). A policy with problems prints one
line per problem (file:line:column path: message) and writes nothing. Output is deterministic:
the same source and compiler version give the same bytes, so --check ARTIFACT SOURCE rebuilds
SOURCE and exits 0 only when the bytes are identical. --keyless signs as apx sign --keyless
does (a Fulcio certificate, also written to .wasm.pem, and a Rekor entry in the bundle);
--timestamp-server-url adds an RFC 3161 timestamp. docs/policy-language.md, docs/abi.md,
docs/operations.md ("Keyless signing"). --publish URL is validated before anything is compiled.
--json prints one JSON document on stdout (paths, sha256 digests, key id or identity).`,
  flags: [
    { name: 'out', type: 'string', value: 'DIR', description: 'Directory for the artifacts (default: .).' },
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The key to sign with: a cosign key file, env://VAR (the PEM in a variable) or a KMS/HSM URI (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
    { name: 'no-sign', type: 'boolean', description: 'Do not sign (local experiments only: workers in strict mode refuse it).' },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description: 'Environment the signature binds the artifact to: dev, staging or production (default: dev).',
    },
    {
      name: 'publish',
      type: 'string',
      value: 'URL',
      description: 'Also publish each signed artifact to this store (directory, gs://, s3://, oci://).',
    },
    { name: 'check', type: 'string', value: 'ARTIFACT', description: 'Rebuild SOURCE and compare with ARTIFACT byte for byte.' },
    JSON_OUTPUT_FLAG,
    ...SIGNING_FLAGS,
  ],
  positionals: { min: 1, max: Number.POSITIVE_INFINITY, names: 'FILE (a policy YAML file)' },
  async run(ctx, args) {
    const checkPath = flagString(args, 'check');
    if (checkPath) {
      if (args.positionals.length !== 1) throw new UsageError('--check takes one SOURCE');
      return check(ctx, checkPath, args.positionals[0] as string);
    }
    const noSign = flagBool(args, 'no-sign');
    if (noSign) {
      for (const name of [
        'key',
        'keyless',
        'identity-token',
        'timestamp-server-url',
        'fulcio-url',
        'rekor-url',
        'signing-config',
      ]) {
        if (args.flags[name] !== undefined) throw new UsageError(`--${name} and --no-sign exclude each other`);
      }
    }
    const outDir = flagString(args, 'out') ?? '.';
    const environment = environmentFlag(args);
    const publishUrl = flagString(args, 'publish');
    if (publishUrl && noSign) throw new UsageError('--publish needs signed artifacts; drop --no-sign');
    const human = humanContext(ctx, args);
    armInterrupts();
    // The destination is checked before anything is compiled or signed: a typo costs nothing.
    const store = publishUrl ? await openPublishStore(ctx, publishUrl) : undefined;
    try {
      // The key's scrypt runs on the thread pool while the main thread compiles.
      const opening = noSign ? undefined : openSigning(ctx, args);
      opening?.catch(() => undefined);
      const compiled = await compileAll(ctx, args.positionals);
      // While the scrypt may still run: the attestations' libraries (their errors surface where used).
      if (opening) sbomLibraries().catch(() => undefined);
      // Have the key (keyless: the Fulcio certificate) before writing anything: a missing key
      // or a refused identity must not leave unsigned artifacts.
      const signing = await opening;
      if (signing && isKeyless(signing.signer)) await signing.signer.certificate();
      const signer = signing?.signer;
      if (signer) await refuseRetiredKey(ctx, signer, environment);
      await prepareOutDir(ctx, outDir);
      await testPause(ctx, 'compile:compiled');
      const results: Array<{
        compiled: CompiledPolicy;
        wasmPath: string;
        signature: ArtifactSignature | undefined;
        attestations: ArtifactAttestations | undefined;
      }> = [];
      const startedOn = new Date();
      const build = buildContext(ctx.env, signer !== undefined && isKeyless(signer));
      for (const c of compiled) {
        const wasmPath = join(outDir, c.fileName);
        const signature = signing ? await signPolicyArtifact(signing, c, environment) : undefined;
        if (signer)
          await auditSigning(ctx, signer, 'compile', c.wasm, { reference: c.fileName.slice(0, -'.wasm'.length), environment });
        // The SBOM and the provenance, signed by the same signer (docs/security-model.md, "Attestations").
        const source = SOURCES.get(c);
        const attestations =
          signing && source
            ? await attestArtifact(c, wasmPath, source, {
                signing,
                keyless: isKeyless(signing.signer),
                environment,
                build,
                startedOn,
              })
            : undefined;
        results.push({ compiled: c, wasmPath, signature, attestations });
      }
      // Every file of every artifact in one all-or-none write: the .wasm files renamed last, so
      // an interrupted run leaves the previous complete sets, never a .sig without its .wasm.
      const files: PlannedFile[] = [];
      const stale: string[] = [];
      for (const { compiled: c, wasmPath, signature, attestations } of results) {
        if (attestations) files.push(...attestationFiles(attestations));
        if (signature) {
          files.push({ path: `${wasmPath}.sigstore.json`, data: signature.bundleJson, setting: '--out' });
          files.push({ path: `${wasmPath}.sig`, data: signature.signatureFileContent, setting: '--out' });
          // A keyed signature: a .pem an earlier keyless one left would name the wrong signer.
          if (signature.certificatePem) files.push({ path: `${wasmPath}.pem`, data: signature.certificatePem, setting: '--out' });
          else stale.push(`${wasmPath}.pem`);
        }
        files.push({ path: wasmPath, data: c.wasm, last: true, setting: '--out' });
      }
      await writeFileSet(ctx, files, stale);
      const reports: unknown[] = [];
      for (const { compiled: c, wasmPath, signature, attestations } of results) {
        human.stdout.write(`✓ Compiled: ${wasmPath}\n`);
        if (signature) {
          human.stdout.write(`✓ Signed:    ${wasmPath}.sig\n`);
          if (signature.identity) info(ctx, `  identity ${signature.identity.subject} (issuer ${signature.identity.issuer})`);
          describeEvidence(ctx, signature.bundleJson);
          // stderr: stdout keeps exactly the runbook's two lines per artifact.
          if (attestations) info(ctx, `✓ Attested: ${attestations.sbom.path}, ${attestations.provenance.path}`);
        } else info(ctx, `WARNING: ${wasmPath} is not signed (--no-sign); workers in strict mode will refuse it`);
        const published = store ? await publishToStore(human, store, wasmPath, { environment }) : undefined;
        reports.push({
          reference: `${c.meta.policy}@${c.meta.version}`,
          environment,
          artifact: fileJson(wasmPath, c.wasm),
          signature: signature ? fileJson(`${wasmPath}.sig`, signature.signatureFileContent) : null,
          bundle: signature ? fileJson(`${wasmPath}.sigstore.json`, signature.bundleJson) : null,
          certificate: signature?.certificatePem ? fileJson(`${wasmPath}.pem`, signature.certificatePem) : null,
          keyId: signature && !signature.identity ? signature.keyId : null,
          identity: signature?.identity ?? null,
          sbom: attestations ? fileJson(attestations.sbom.path, attestations.sbom.bundleJson) : null,
          provenance: attestations ? fileJson(attestations.provenance.path, attestations.provenance.bundleJson) : null,
          published: published ? { store: published.store, outcome: published.outcome, objects: published.objects } : null,
        });
      }
      writeJsonResult(ctx, args, { artifacts: reports });
    } finally {
      await store?.close?.();
    }
    return 0;
  },
};

/** Creates --out (and its parents) before anything is signed: a file in the way is one clear error. */
async function prepareOutDir(ctx: CliContext, outDir: string): Promise<void> {
  try {
    await mkdir(resolvePath(ctx, outDir), { recursive: true });
  } catch (err) {
    throw (
      fileError(err, {
        what: 'output directory',
        path: outDir,
        cwd: ctx.cwd,
        setting: '--out',
        expect: 'directory',
        access: 'write',
      }) ?? err
    );
  }
}
