// The attestations apx compile writes beside each artifact: an SBOM and a provenance, each
// an in-toto statement in its own Sigstore bundle (docs/security-model.md, "Attestations").

import {
  attestationFileName,
  attestationStatement,
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_PROVENANCE_V1_PREDICATE_TYPE,
} from '@apx/core';
import type { CompiledPolicy } from '@apx/policy';
import { signStatement } from '@apx/sign';
import type { PlannedFile } from '../file-set.js';
import type { Signing } from '../signing.js';
import { type BuildContext, buildProvenance } from './provenance.js';
import { buildSbom, type SourceFile, withPurls } from './sbom.js';

export { type BuildContext, buildContext, COMPILE_BUILD_TYPE, LOCAL_BUILDER_ID } from './provenance.js';
export { type SourceFile, sbomLibraries } from './sbom.js';

export interface AttestationOptions {
  signing: Signing;
  keyless: boolean;
  environment: string;
  build: BuildContext;
  startedOn: Date;
}

export interface ArtifactAttestations {
  sbom: { path: string; bundleJson: string };
  provenance: { path: string; bundleJson: string };
}

/** Builds, signs and plans the SBOM and provenance bundles of one artifact (written with it, all or none). */
export async function attestArtifact(
  compiled: CompiledPolicy,
  wasmPath: string,
  source: SourceFile,
  options: AttestationOptions,
): Promise<ArtifactAttestations> {
  const { compilerToolchain } = await import('@apx/policy');
  const { sha256Hex } = await import('@apx/core');
  const toolchain = await withPurls(compilerToolchain());
  const artifactSha256 = sha256Hex(compiled.wasm);
  const subject = { name: `${compiled.meta.policy}@${compiled.meta.version}`, sha256: artifactSha256 };
  const now = new Date();
  const sbomJson = await buildSbom({
    policyId: compiled.meta.policy,
    version: compiled.meta.version,
    artifactSha256,
    abiVersion: compiled.meta.abi,
    compilerVersion: compiled.meta.compiler,
    source,
    toolchain,
    now,
  });
  const provenance = buildProvenance({
    source,
    flags: { environment: options.environment, signing: options.keyless ? 'keyless' : 'key' },
    compilerVersion: compiled.meta.compiler,
    abiVersion: compiled.meta.abi,
    toolchain,
    build: options.build,
    startedOn: options.startedOn,
    finishedOn: now,
  });
  const witnesses = options.signing.witnesses('dsse');
  const sbom = await signStatement(
    options.signing.signer,
    attestationStatement(subject, CYCLONEDX_PREDICATE_TYPE, JSON.parse(sbomJson) as Record<string, unknown>),
    { witnesses },
  );
  const prov = await signStatement(
    options.signing.signer,
    attestationStatement(subject, SLSA_PROVENANCE_V1_PREDICATE_TYPE, provenance),
    { witnesses },
  );
  return {
    sbom: { path: attestationFileName(wasmPath, 'sbom'), bundleJson: sbom.bundleJson },
    provenance: { path: attestationFileName(wasmPath, 'provenance'), bundleJson: prov.bundleJson },
  };
}

/** The planned files of an artifact's attestations. */
export function attestationFiles(a: ArtifactAttestations): PlannedFile[] {
  return [
    { path: a.sbom.path, data: a.sbom.bundleJson, setting: '--out' },
    { path: a.provenance.path, data: a.provenance.bundleJson, setting: '--out' },
  ];
}
