// The CycloneDX 1.6 SBOM of one compiled artifact (docs/security-model.md, "Attestations").

import type { ToolchainPackage } from '@apx/policy';

/** A policy source file as the compile read it. */
export interface SourceFile {
  /** The path as the user named it, relative to the working directory when inside it. */
  path: string;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Hex SHA-256 of the canonical source the compiler hashed into apx.meta. */
  canonicalSha256: string;
}

export interface SbomInput {
  policyId: string;
  version: string;
  /** Hex SHA-256 of the artifact. */
  artifactSha256: string;
  abiVersion: number;
  /** The compiler string embedded in the artifact (apx.meta compiler). */
  compilerVersion: string;
  source: SourceFile;
  toolchain: ToolchainEntry[];
  /** The time of the build (metadata.timestamp). */
  now: Date;
}

/** A toolchain package with its Package URL. */
export type ToolchainEntry = ToolchainPackage & { purl: string };

// By subpath: the CycloneDX package's index also loads its validators (ajv) and contrib
// helpers, which building and serializing a BOM never use.
type SbomLibraries = [
  typeof import('@cyclonedx/cyclonedx-library/Models'),
  typeof import('@cyclonedx/cyclonedx-library/Enums'),
  typeof import('@cyclonedx/cyclonedx-library/Serialize'),
  typeof import('@cyclonedx/cyclonedx-library/Spec'),
  typeof import('packageurl-js'),
];
const loadLibraries = (): Promise<SbomLibraries> =>
  Promise.all([
    import('@cyclonedx/cyclonedx-library/Models'),
    import('@cyclonedx/cyclonedx-library/Enums'),
    import('@cyclonedx/cyclonedx-library/Serialize'),
    import('@cyclonedx/cyclonedx-library/Spec'),
    import('packageurl-js'),
  ]);
let libraries: Promise<SbomLibraries> | undefined;

/**
 * Loads the SBOM's libraries once; compile starts it while the key's scrypt still runs, so that
 * the main thread loads them instead of waiting.
 */
export function sbomLibraries(): Promise<SbomLibraries> {
  libraries ??= loadLibraries();
  return libraries;
}

/** The toolchain with `pkg:npm/...` Package URLs, encoded by packageurl-js (a scope as %40scope). */
export async function withPurls(toolchain: ToolchainPackage[]): Promise<ToolchainEntry[]> {
  const { PackageURL } = (await sbomLibraries())[4];
  return toolchain.map((pkg) => {
    const [namespace, name] = pkg.name.startsWith('@') ? pkg.name.split('/', 2) : [undefined, pkg.name];
    return { ...pkg, purl: new PackageURL('npm', namespace ?? null, name as string, pkg.version, null, null).toString() };
  });
}

/**
 * The SBOM as CycloneDX 1.6 JSON, built with @cyclonedx/cyclonedx-library (loaded here only:
 * compiles without signing never pay for it). The artifact is metadata.component; the policy
 * source, the compiler and the libraries that shaped the bytes are components, with
 * dependencies artifact → source, compiler; compiler → libraries. The compiler is also the
 * tool that made the BOM.
 */
export async function buildSbom(input: SbomInput): Promise<string> {
  const [Models, Enums, Serialize, Spec] = await sbomLibraries();
  const sha256 = (hex: string) => new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], hex]]);
  const prop = (name: string, value: string) => new Models.Property(name, value);

  const bom = new Models.Bom();
  bom.metadata.timestamp = input.now;
  bom.metadata.lifecycles.add(Enums.LifecyclePhase.Build);
  const artifact = new Models.Component(Enums.ComponentType.Application, input.policyId, {
    bomRef: 'artifact',
    version: input.version,
    description: `APX policy artifact ${input.policyId}@${input.version}.wasm (WebAssembly)`,
    hashes: sha256(input.artifactSha256),
    properties: new Models.PropertyRepository([
      prop('apx:artifact', `${input.policyId}@${input.version}.wasm`),
      prop('apx:abi', String(input.abiVersion)),
    ]),
  });
  bom.metadata.component = artifact;

  const source = new Models.Component(Enums.ComponentType.File, input.source.path, {
    bomRef: 'source',
    description: 'apx/v1 policy source',
    hashes: sha256(input.source.sha256),
    properties: new Models.PropertyRepository([prop('apx:canonical-source-sha256', input.source.canonicalSha256)]),
  });
  const libraries = input.toolchain.filter((p) => p.role !== 'compiler');
  const own = input.toolchain.find((p) => p.role === 'compiler');
  const compiler = new Models.Component(Enums.ComponentType.Application, own?.name ?? '@apx/policy', {
    bomRef: 'compiler',
    ...(own ? { version: own.version, purl: own.purl } : {}),
    description: 'the APX policy compiler',
    properties: new Models.PropertyRepository([prop('apx:compiler', input.compilerVersion)]),
  });
  const libComponents = libraries.map(
    (p) =>
      new Models.Component(Enums.ComponentType.Library, p.name, {
        bomRef: `lib:${p.name}`,
        version: p.version,
        purl: p.purl,
        description: p.role,
        scope: Enums.ComponentScope.Required,
      }),
  );
  bom.components.add(source);
  bom.components.add(compiler);
  for (const c of libComponents) {
    bom.components.add(c);
    compiler.dependencies.add(c.bomRef);
  }
  artifact.dependencies.add(source.bomRef);
  artifact.dependencies.add(compiler.bomRef);
  const tool = new Models.Component(Enums.ComponentType.Application, compiler.name, {
    ...(own ? { version: own.version, purl: own.purl } : {}),
  });
  bom.metadata.tools.components.add(tool);

  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return serializer.serialize(bom, { sortLists: true, space: 0 });
}
