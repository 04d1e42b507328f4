// The SBOM validates with CycloneDX's own strict JSON validator for 1.6; the provenance
// against a JSON Schema authored here from SLSA provenance v1's field definitions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilerToolchain } from '@apx/policy';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { buildContext, COMPILE_BUILD_TYPE, LOCAL_BUILDER_ID } from './index.js';
import { buildProvenance } from './provenance.js';
import { buildSbom, withPurls } from './sbom.js';

const source = { path: 'policies/payments.yaml', sha256: 'a'.repeat(64), canonicalSha256: 'b'.repeat(64) };

/**
 * SLSA provenance v1 as a JSON Schema, authored from the field definitions of
 * https://slsa.dev/spec/v1.0/provenance (SLSA publishes no JSON Schema package on npm):
 * required fields, types, ResourceDescriptor's "at least one of uri, digest, content",
 * lowercase-hex DigestSets, RFC 3339 timestamps; extension fields only as `<vendor>_<field>`.
 */
const DIGEST_SET = { type: 'object', minProperties: 1, additionalProperties: { type: 'string', pattern: '^[0-9a-f]+$' } };
const EXTENSION = { '^[A-Za-z0-9]+_[A-Za-z0-9_]+$': {} };
const RESOURCE_DESCRIPTOR = {
  type: 'object',
  properties: {
    uri: { type: 'string', minLength: 1 },
    digest: DIGEST_SET,
    name: { type: 'string' },
    downloadLocation: { type: 'string' },
    mediaType: { type: 'string' },
    content: { type: 'string', contentEncoding: 'base64' },
    annotations: { type: 'object' },
  },
  anyOf: [{ required: ['uri'] }, { required: ['digest'] }, { required: ['content'] }],
  patternProperties: EXTENSION,
  additionalProperties: false,
};
const SLSA_PROVENANCE_V1_SCHEMA = {
  type: 'object',
  required: ['_type', 'subject', 'predicateType', 'predicate'],
  properties: {
    _type: { const: 'https://in-toto.io/Statement/v1' },
    subject: { type: 'array', minItems: 1, items: { ...RESOURCE_DESCRIPTOR, required: ['digest'] } },
    predicateType: { const: 'https://slsa.dev/provenance/v1' },
    predicate: {
      type: 'object',
      required: ['buildDefinition', 'runDetails'],
      additionalProperties: false,
      patternProperties: EXTENSION,
      properties: {
        buildDefinition: {
          type: 'object',
          required: ['buildType', 'externalParameters'],
          additionalProperties: false,
          patternProperties: EXTENSION,
          properties: {
            buildType: { type: 'string', format: 'uri' },
            externalParameters: { type: 'object' },
            internalParameters: { type: 'object' },
            resolvedDependencies: { type: 'array', items: RESOURCE_DESCRIPTOR },
          },
        },
        runDetails: {
          type: 'object',
          required: ['builder'],
          additionalProperties: false,
          patternProperties: EXTENSION,
          properties: {
            builder: {
              type: 'object',
              required: ['id'],
              additionalProperties: false,
              patternProperties: EXTENSION,
              properties: {
                id: { type: 'string', format: 'uri' },
                builderDependencies: { type: 'array', items: RESOURCE_DESCRIPTOR },
                version: { type: 'object', additionalProperties: { type: 'string' } },
              },
            },
            metadata: {
              type: 'object',
              additionalProperties: false,
              patternProperties: EXTENSION,
              properties: {
                invocationId: { type: 'string' },
                startedOn: { type: 'string', format: 'date-time' },
                finishedOn: { type: 'string', format: 'date-time' },
              },
            },
            byproducts: { type: 'array', items: RESOURCE_DESCRIPTOR },
          },
        },
      },
    },
  },
};

function provenanceValidator() {
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv.compile(SLSA_PROVENANCE_V1_SCHEMA);
}

async function sbomFor(overrides: Partial<Parameters<typeof buildSbom>[0]> = {}): Promise<string> {
  return buildSbom({
    policyId: 'pb-pay-v1',
    version: '1.0.0',
    artifactSha256: 'c'.repeat(64),
    abiVersion: 1,
    compilerVersion: 'apx-policy/0.2.0 wabt/1.0.39',
    source,
    toolchain: await withPurls(compilerToolchain()),
    now: new Date('2026-01-02T03:04:05Z'),
    ...overrides,
  });
}

describe('SBOM (CycloneDX 1.6)', () => {
  it("validates with @cyclonedx/cyclonedx-library's strict JSON validator for 1.6", async () => {
    const { Validation, Spec } = await import('@cyclonedx/cyclonedx-library');
    const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
    const json = await sbomFor();
    assert.equal(await validator.validate(json), null);
    // The validator is not a rubber stamp: a wrong hash length is refused.
    const broken = JSON.parse(json);
    broken.metadata.component.hashes[0].content = 'abc';
    assert.notEqual(await validator.validate(JSON.stringify(broken)), null);
  });

  it('names the artifact, its source, the compiler and the libraries that shaped the bytes, with versions and purls', async () => {
    const bom = JSON.parse(await sbomFor());
    assert.equal(bom.specVersion, '1.6');
    assert.deepEqual(bom.metadata.component.hashes, [{ alg: 'SHA-256', content: 'c'.repeat(64) }]);
    assert.equal(bom.metadata.component.name, 'pb-pay-v1');
    assert.equal(bom.metadata.component.version, '1.0.0');
    const byRef = new Map<string, Record<string, unknown>>(bom.components.map((c: { 'bom-ref': string }) => [c['bom-ref'], c]));
    assert.deepEqual(byRef.get('source')?.hashes, [{ alg: 'SHA-256', content: 'a'.repeat(64) }]);
    assert.equal(byRef.get('source')?.name, 'policies/payments.yaml');
    assert.match(String(byRef.get('compiler')?.purl), /^pkg:npm\/%40apx\/policy@\d+\.\d+\.\d+$/);
    for (const lib of ['yaml', '@bufbuild/cel', 'wabt']) {
      const c = byRef.get(`lib:${lib}`);
      assert.ok(c, lib);
      assert.match(String(c.version), /^\d+\.\d+\.\d+/);
      assert.match(String(c.purl), /^pkg:npm\//);
    }
    assert.deepEqual(bom.dependencies.find((d: { ref: string }) => d.ref === 'artifact').dependsOn, ['compiler', 'source']);
  });
});

describe('provenance (SLSA v1)', () => {
  const validate = provenanceValidator();
  const statementOf = (predicate: Record<string, unknown>) => ({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'pb-pay-v1@1.0.0', digest: { sha256: 'c'.repeat(64) } }],
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate,
  });
  const provenance = async (env: NodeJS.ProcessEnv, keyless: boolean) =>
    buildProvenance({
      source,
      flags: { environment: 'production', signing: keyless ? 'keyless' : 'key' },
      compilerVersion: 'apx-policy/0.2.0 wabt/1.0.39',
      abiVersion: 1,
      toolchain: await withPurls(compilerToolchain()),
      build: buildContext(env, keyless),
      startedOn: new Date('2026-01-02T03:04:05Z'),
      finishedOn: new Date('2026-01-02T03:04:06Z'),
    });

  it('validates against the SLSA v1 schema, locally and in GitHub Actions', async () => {
    for (const [env, keyless] of [
      [{}, false],
      [
        {
          GITHUB_ACTIONS: 'true',
          GITHUB_REPOSITORY: 'acme/policies',
          GITHUB_WORKFLOW_REF: 'acme/policies/.github/workflows/release.yml@refs/tags/v1',
          GITHUB_SHA: 'f'.repeat(40),
          GITHUB_REF: 'refs/tags/v1',
          GITHUB_RUN_ID: '42',
        },
        true,
      ],
    ] as const) {
      const statement = statementOf(await provenance(env, keyless));
      assert.ok(validate(statement), JSON.stringify(validate.errors));
    }
  });

  it('the schema refuses what the spec forbids: no builder id, a dependency with nothing to identify it, a bad time', async () => {
    const good = await provenance({}, false);
    // biome-ignore lint/suspicious/noExplicitAny: mutating JSON under test
    const cases: Array<(p: any) => void> = [
      (p) => delete p.runDetails.builder.id,
      (p) => delete p.buildDefinition.externalParameters,
      (p) => p.buildDefinition.resolvedDependencies.push({ name: 'x' }),
      (p) => (p.runDetails.metadata.startedOn = 'yesterday'),
      (p) => (p.buildDefinition.resolvedDependencies[0].digest = { sha256: 'NOT-HEX' }),
      (p) => (p.runDetails.unknownField = 1),
    ];
    for (const mutate of cases) {
      const p = structuredClone(good);
      mutate(p);
      assert.equal(validate(statementOf(p)), false, mutate.toString());
    }
  });

  it('documents the build: build type, source digests and flags as external parameters, dependencies with purls', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: JSON under test
    const p = (await provenance({}, false)) as any;
    assert.equal(p.buildDefinition.buildType, COMPILE_BUILD_TYPE);
    assert.deepEqual(p.buildDefinition.externalParameters.sources, [{ path: source.path, digest: { sha256: source.sha256 } }]);
    assert.equal(p.buildDefinition.externalParameters.environment, 'production');
    assert.equal(p.buildDefinition.externalParameters.signing, 'key');
    assert.ok(p.buildDefinition.resolvedDependencies.some((d: { uri?: string }) => d.uri?.startsWith('pkg:npm/wabt@')));
    assert.equal(p.runDetails.builder.id, LOCAL_BUILDER_ID);
  });

  it('takes the builder id from the GitHub workflow only with keyless signing; else APX_BUILDER_ID or the local builder', () => {
    const gha = {
      GITHUB_ACTIONS: 'true',
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: 'acme/policies',
      GITHUB_WORKFLOW_REF: 'acme/policies/.github/workflows/release.yml@refs/tags/v1',
      GITHUB_SHA: 'f'.repeat(40),
      GITHUB_REF: 'refs/tags/v1',
    };
    const keyless = buildContext(gha, true);
    assert.equal(keyless.builderId, 'https://github.com/acme/policies/.github/workflows/release.yml@refs/tags/v1');
    assert.deepEqual(keyless.source, {
      repository: 'https://github.com/acme/policies',
      ref: 'refs/tags/v1',
      commit: 'f'.repeat(40),
    });
    // Keyed signing in Actions: the workflow does not sign, so it is not named as the builder.
    assert.equal(buildContext(gha, false).builderId, LOCAL_BUILDER_ID);
    assert.equal(buildContext({ APX_BUILDER_ID: 'https://ci.example/builder' }, false).builderId, 'https://ci.example/builder');
    assert.deepEqual(buildContext({ APX_SOURCE_REPOSITORY: 'https://git.example/acme/policies' }, false).source, {
      repository: 'https://git.example/acme/policies',
    });
  });
});
