// SLSA provenance v1 of one compile (https://slsa.dev/spec/v1.0/provenance); the build type
// and its parameters are documented in docs/security-model.md ("Attestations").

import type { SourceFile, ToolchainEntry } from './sbom.js';

/** The build type of `apx compile`: what externalParameters and internalParameters mean. */
export const COMPILE_BUILD_TYPE = 'https://apx.dev/compile/v1';
/** The builder id of a compile outside GitHub Actions keyless signing (unless APX_BUILDER_ID names one). */
export const LOCAL_BUILDER_ID = 'https://apx.dev/builders/local/v1';

/** Where and by whom the compile ran, from the environment of the composition root. */
export interface BuildContext {
  builderId: string;
  /** The source repository, commit and ref when known (GitHub Actions, or APX_SOURCE_* variables). */
  source?: { repository: string; ref?: string; commit?: string };
  /** A run id (GitHub Actions: the run URL and attempt). */
  invocationId?: string;
}

/**
 * The builder: in GitHub Actions with keyless signing, the workflow that signs (the identity
 * Fulcio certifies: `<server>/<owner>/<repo>/.github/workflows/<file>@<ref>`, GITHUB_WORKFLOW_REF),
 * so the builder id and the signer agree as SLSA's GitHub builders have them; otherwise
 * APX_BUILDER_ID or the local builder. A builder id is a claim of the signer: a verifier
 * trusts it only together with the signer (docs/security-model.md).
 */
export function buildContext(env: NodeJS.ProcessEnv, keyless: boolean): BuildContext {
  const inActions = env.GITHUB_ACTIONS === 'true';
  const server = (env.GITHUB_SERVER_URL ?? 'https://github.com').replace(/\/+$/, '');
  const ctx: BuildContext = { builderId: env.APX_BUILDER_ID?.trim() || LOCAL_BUILDER_ID };
  if (inActions && keyless && env.GITHUB_WORKFLOW_REF) ctx.builderId = `${server}/${env.GITHUB_WORKFLOW_REF}`;
  if (inActions && env.GITHUB_REPOSITORY) {
    ctx.source = {
      repository: `${server}/${env.GITHUB_REPOSITORY}`,
      ...(env.GITHUB_REF ? { ref: env.GITHUB_REF } : {}),
      ...(env.GITHUB_SHA ? { commit: env.GITHUB_SHA } : {}),
    };
    if (env.GITHUB_RUN_ID)
      ctx.invocationId = `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}/attempts/${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
  } else if (env.APX_SOURCE_REPOSITORY?.trim()) {
    ctx.source = {
      repository: env.APX_SOURCE_REPOSITORY.trim(),
      ...(env.APX_SOURCE_REF ? { ref: env.APX_SOURCE_REF } : {}),
      ...(env.APX_SOURCE_COMMIT ? { commit: env.APX_SOURCE_COMMIT } : {}),
    };
  }
  return ctx;
}

export interface ProvenanceInput {
  source: SourceFile;
  /** The compile flags that change the output or its signature. */
  flags: { environment: string; signing: 'key' | 'keyless' };
  compilerVersion: string;
  abiVersion: number;
  toolchain: ToolchainEntry[];
  build: BuildContext;
  startedOn: Date;
  finishedOn: Date;
}

/** The SLSA provenance v1 predicate of a compile. */
export function buildProvenance(input: ProvenanceInput): Record<string, unknown> {
  const { source, build } = input;
  const resolvedDependencies: Array<Record<string, unknown>> = [];
  if (build.source) {
    const at = build.source.ref ? `@${build.source.ref}` : '';
    resolvedDependencies.push({
      uri: `git+${build.source.repository}${at}`,
      ...(build.source.commit ? { digest: { gitCommit: build.source.commit } } : {}),
    });
  }
  resolvedDependencies.push({ name: source.path, digest: { sha256: source.sha256 } });
  for (const p of input.toolchain) resolvedDependencies.push({ name: p.name, uri: p.purl });
  return {
    buildDefinition: {
      buildType: COMPILE_BUILD_TYPE,
      externalParameters: {
        sources: [{ path: source.path, digest: { sha256: source.sha256 } }],
        environment: input.flags.environment,
        signing: input.flags.signing,
        ...(build.source ? { source: { ...build.source } } : {}),
      },
      internalParameters: {
        compiler: input.compilerVersion,
        abiVersion: input.abiVersion,
        canonicalSourceDigest: { sha256: source.canonicalSha256 },
      },
      resolvedDependencies,
    },
    runDetails: {
      builder: {
        id: build.builderId,
        version: Object.fromEntries(input.toolchain.filter((p) => p.role === 'compiler').map((p) => [p.name, p.version])),
      },
      metadata: {
        ...(build.invocationId ? { invocationId: build.invocationId } : {}),
        startedOn: input.startedOn.toISOString(),
        finishedOn: input.finishedOn.toISOString(),
      },
    },
  };
}
