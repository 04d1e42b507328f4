import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreErrorCode, isApxError } from '../error.js';
import {
  attestationRequirementsJson,
  checkCompilerFloor,
  checkProvenance,
  checkSbom,
  deniedComponent,
  parseAttestationRequirements,
  requiredKinds,
  vexAdvisories,
} from './requirements.js';

const code = (c: string) => (err: unknown) => isApxError(err) && err.code === c;
const statement = (predicateType: string, predicate: Record<string, unknown>) => ({
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: 'x', digest: { sha256: 'a'.repeat(64) } }],
  predicateType,
  predicate,
});

describe('attestation requirements', () => {
  it('parse strictly: an unknown field or a malformed value refuses the policy (a typo never switches a check off)', () => {
    const ok = parseAttestationRequirements(
      { provenance: true, builderIds: ['https://b'], denyComponents: ['pkg:npm/wabt@1.0.38'] },
      'here',
    );
    assert.deepEqual(attestationRequirementsJson(ok), {
      provenance: true,
      builderIds: ['https://b'],
      denyComponents: ['pkg:npm/wabt@1.0.38'],
    });
    for (const bad of [
      { builderId: ['https://b'] },
      { provenance: 'yes' },
      { denyComponents: ['wabt'] },
      { compilerMin: '0.2' },
      { sourceRepositories: [''] },
      [],
    ]) {
      assert.throws(
        () => parseAttestationRequirements(bad, 'here'),
        code(CoreErrorCode.ATTESTATION_INVALID),
        JSON.stringify(bad),
      );
    }
  });

  it('conditions imply the attestation they read', () => {
    assert.deepEqual(requiredKinds(parseAttestationRequirements({ builderIds: ['https://b'] }, 'x')), ['provenance']);
    assert.deepEqual(requiredKinds(parseAttestationRequirements({ denyComponents: ['pkg:npm/a'] }, 'x')), ['sbom']);
    assert.deepEqual(requiredKinds(parseAttestationRequirements({ compilerMin: '0.2.0' }, 'x')), []);
  });

  it('deny list: with a version, that version; without, any; scopes percent-encoded or not; qualifiers ignored', () => {
    assert.equal(deniedComponent('pkg:npm/wabt@1.0.38', ['pkg:npm/wabt@1.0.38']), 'pkg:npm/wabt@1.0.38');
    assert.equal(deniedComponent('pkg:npm/wabt@1.0.39', ['pkg:npm/wabt@1.0.38']), undefined);
    assert.equal(deniedComponent('pkg:npm/wabt@1.0.39?x=y', ['pkg:npm/wabt']), 'pkg:npm/wabt');
    assert.equal(
      deniedComponent('pkg:npm/%40bufbuild/cel@0.6.1', ['pkg:npm/@bufbuild/cel@0.6.1']),
      'pkg:npm/@bufbuild/cel@0.6.1',
    );
    assert.equal(deniedComponent('pkg:npm/wabtx@1.0.0', ['pkg:npm/wabt']), undefined);
  });

  it('provenance: builder id and source repository must be listed; the SBOM must name no denied component', () => {
    const r = parseAttestationRequirements(
      { builderIds: ['https://x'], sourceRepositories: ['https://github.com/acme/p'], denyComponents: ['pkg:npm/evil'] },
      'x',
    );
    const prov = (id: unknown, repo: unknown) =>
      statement('https://slsa.dev/provenance/v1', {
        buildDefinition: { buildType: 't', externalParameters: { source: { repository: repo } } },
        runDetails: { builder: { id } },
      });
    checkProvenance(prov('https://x', 'https://github.com/acme/p'), r, 'production');
    assert.throws(() => checkProvenance(prov('https://y', 'https://github.com/acme/p'), r, 'production'), /built by https:\/\/y/);
    assert.throws(() => checkProvenance(prov(undefined, 'https://github.com/acme/p'), r, 'production'), /\(no builder id\)/);
    assert.throws(
      () => checkProvenance(prov('https://x', 'https://github.com/evil/p'), r, 'production'),
      /built from https:\/\/github.com\/evil\/p/,
    );
    assert.throws(
      () => checkProvenance(statement('https://slsa.dev/provenance/v0.2', {}), r, 'production'),
      code(CoreErrorCode.ATTESTATION_INVALID),
    );
    const bom = (purl: string) =>
      statement('https://cyclonedx.org/bom', {
        metadata: { component: { name: 'a' } },
        components: [{ name: 'n', components: [{ purl }] }],
      });
    checkSbom(bom('pkg:npm/fine@1.0.0'), r, 'production');
    assert.throws(() => checkSbom(bom('pkg:npm/evil@2.0.0'), r, 'production'), code(CoreErrorCode.ATTESTATION_POLICY_VIOLATION));
  });

  it('compiler floor: judged on apx-policy/X.Y.Z of the signed binding', () => {
    const r = parseAttestationRequirements({ compilerMin: '0.2.0' }, 'x');
    checkCompilerFloor('apx-policy/0.2.0 wabt/1.0.39', r, 'production');
    checkCompilerFloor('apx-policy/0.10.0 wabt/1.0.39', r, 'production');
    assert.throws(() => checkCompilerFloor('apx-policy/0.1.9 wabt/1.0.39', r, 'production'), /below the floor 0\.2\.0/);
    assert.throws(() => checkCompilerFloor(null, r, 'production'), code(CoreErrorCode.ATTESTATION_POLICY_VIOLATION));
  });
  it('VEX: affected and unresolved component versions only; refs by bom-ref or purl; exact versions; ranges refused', () => {
    const doc = (vulnerabilities: unknown[], components: unknown[] = []) => ({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      components,
      vulnerabilities,
    });
    const list = vexAdvisories(
      doc(
        [
          { id: 'CVE-1', analysis: { state: 'exploitable' }, affects: [{ ref: 'wabt' }] },
          {
            id: 'CVE-2',
            affects: [{ ref: 'pkg:npm/yaml', versions: [{ version: '2.0.0' }, { version: '2.9.1', status: 'unaffected' }] }],
          },
          { id: 'CVE-3', analysis: { state: 'resolved' }, affects: [{ ref: 'pkg:npm/x@1.0.0' }] },
          { id: 'CVE-4', analysis: { state: 'not_affected' }, affects: [{ ref: 'pkg:npm/y@1.0.0' }] },
        ],
        [{ type: 'library', name: 'wabt', 'bom-ref': 'wabt', purl: 'pkg:npm/wabt@1.0.39' }],
      ),
      'here',
    );
    assert.deepEqual(list, [
      { id: 'CVE-1', purl: 'pkg:npm/wabt@1.0.39', state: 'exploitable' },
      { id: 'CVE-2', purl: 'pkg:npm/yaml@2.0.0', state: 'in_triage' },
    ]);
    const r = parseAttestationRequirements({ vulnerabilities: list }, 'x');
    assert.deepEqual(requiredKinds(r), ['sbom']);
    const bom = (purl: string) => statement('https://cyclonedx.org/bom', { components: [{ name: 'n', purl }] });
    assert.throws(() => checkSbom(bom('pkg:npm/wabt@1.0.39'), r, 'production'), code(CoreErrorCode.VULNERABLE_COMPONENT));
    assert.deepEqual(checkSbom(bom('pkg:npm/wabt@1.0.40'), r, 'production'), ['pkg:npm/wabt@1.0.40']);
    for (const bad of [
      { bomFormat: 'SPDX' },
      doc([{ id: 'C', affects: [{ ref: 'pkg:npm/a', versions: [{ range: 'vers:npm/<2' }] }] }]),
      doc([{ id: 'C', affects: [{ ref: 'pkg:npm/a' }] }]),
      doc([{ id: 'C', affects: [{ ref: 'unknown-ref' }] }]),
      doc([{ id: 'C' }]),
    ]) {
      assert.throws(() => vexAdvisories(bad, 'here'), code(CoreErrorCode.ATTESTATION_INVALID), JSON.stringify(bad));
    }
  });
});
