// What an environment requires of an artifact's attestations (the trust repository's
// environment role, `apx.attestations`), and the checks on verified attestations.

import { isSemver } from '../artifact/ref.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { compareSemver } from '../verify/semver.js';
import { type AttestationKind, CYCLONEDX_PREDICATE_TYPE, predicateOf, SLSA_PROVENANCE_V1_PREDICATE_TYPE } from './statement.js';

/**
 * An environment's attestation policy. A condition on provenance (builders, source
 * repositories) requires provenance; a deny list requires an SBOM.
 */
export interface AttestationRequirements {
  /** Require a provenance attestation (SLSA v1) signed by a signer the environment trusts. */
  provenance: boolean;
  /** Require an SBOM attestation (CycloneDX) signed by a signer the environment trusts. */
  sbom: boolean;
  /** The provenance's runDetails.builder.id must be one of these (exactly); empty = any. */
  builderIds: readonly string[];
  /** The provenance's externalParameters.source.repository must be one of these (exactly); empty = any. */
  sourceRepositories: readonly string[];
  /** The APX compiler (apx-policy/X.Y.Z in the signed binding) must be at least this version. */
  compilerMin?: string | undefined;
  /**
   * Package URLs no SBOM component may have: with a version (`pkg:npm/wabt@1.0.38`) that
   * version; without (`pkg:npm/wabt`) any version. Qualifiers and subpaths are ignored.
   */
  denyComponents: readonly string[];
  /**
   * The VEX gate: component versions a signed CycloneDX VEX document lists as affected and not
   * resolved (vexAdvisories). An SBOM naming one is refused (VULNERABLE_COMPONENT), and an
   * artifact already loaded is unloaded when the document arrives.
   */
  vulnerabilities: readonly Advisory[];
}

/** One affected, unresolved component version of a VEX document. */
export interface Advisory {
  /** The vulnerability id (CVE-…, GHSA-…, or the advisory's own). */
  id: string;
  /** The affected component: a package URL with its version. */
  purl: string;
  /** The VEX analysis state (exploitable, in_triage, or none given). */
  state: string;
}

/** True when the requirements ask for nothing. */
export function requiresNothing(r: AttestationRequirements | undefined): boolean {
  return (
    r === undefined ||
    (!r.provenance &&
      !r.sbom &&
      r.builderIds.length === 0 &&
      r.sourceRepositories.length === 0 &&
      r.compilerMin === undefined &&
      r.denyComponents.length === 0 &&
      r.vulnerabilities.length === 0)
  );
}

/** The attestation kinds the requirements make mandatory. */
export function requiredKinds(r: AttestationRequirements): AttestationKind[] {
  const kinds: AttestationKind[] = [];
  if (r.sbom || r.denyComponents.length > 0 || r.vulnerabilities.length > 0) kinds.push('sbom');
  if (r.provenance || r.builderIds.length > 0 || r.sourceRepositories.length > 0) kinds.push('provenance');
  return kinds;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const PURL = /^pkg:[a-z][a-z0-9.+-]*\/[^@?#\s]+(?:@[^?#\s]+)?$/;

/**
 * Reads `apx.attestations` of an environment role. Strict: an unknown field or a malformed
 * value refuses the whole role (fail closed: a typo must not switch a check off).
 */
export function parseAttestationRequirements(raw: unknown, where: string): AttestationRequirements {
  const bad = (why: string) =>
    new VerificationError(CoreErrorCode.ATTESTATION_INVALID, `invalid attestation policy ${where}: ${why}`, {
      hint: 'set it with apx trust require',
    });
  if (!isObject(raw)) throw bad('not an object');
  const known = new Set([
    'provenance',
    'sbom',
    'builderIds',
    'sourceRepositories',
    'compilerMin',
    'denyComponents',
    'vulnerabilities',
  ]);
  for (const k of Object.keys(raw)) if (!known.has(k)) throw bad(`unknown field ${k}`);
  const bool = (k: string) => {
    const v = raw[k] ?? false;
    if (typeof v !== 'boolean') throw bad(`${k} is not true or false`);
    return v;
  };
  const list = (k: string, check: (s: string) => boolean, what: string) => {
    const v = raw[k] ?? [];
    if (!Array.isArray(v)) throw bad(`${k} is not a list`);
    return v.map((s, i) => {
      if (typeof s !== 'string' || !check(s)) throw bad(`${k}[${i}] is not ${what}`);
      return s;
    });
  };
  const nonEmpty = (s: string) => s.trim() === s && s.length > 0;
  const compilerMin = raw.compilerMin;
  if (compilerMin !== undefined && (typeof compilerMin !== 'string' || !isSemver(compilerMin)))
    throw bad('compilerMin is not a semantic version');
  return {
    provenance: bool('provenance'),
    sbom: bool('sbom'),
    builderIds: list('builderIds', nonEmpty, 'a builder id'),
    sourceRepositories: list('sourceRepositories', nonEmpty, 'a repository'),
    ...(compilerMin === undefined ? {} : { compilerMin: compilerMin as string }),
    denyComponents: list('denyComponents', (s) => PURL.test(s), 'a package URL (pkg:type/name[@version])'),
    vulnerabilities: advisories(raw.vulnerabilities ?? [], bad),
  };
}

function advisories(raw: unknown, bad: (why: string) => Error): Advisory[] {
  if (!Array.isArray(raw)) throw bad('vulnerabilities is not a list');
  return raw.map((a, i) => {
    if (!isObject(a) || typeof a.id !== 'string' || a.id === '' || typeof a.purl !== 'string' || typeof a.state !== 'string')
      throw bad(`vulnerabilities[${i}] needs id, purl and state`);
    if (!PURL.test(a.purl) || purlParts(a.purl).version === undefined)
      throw bad(`vulnerabilities[${i}].purl is not a package URL with a version`);
    return { id: a.id, purl: a.purl, state: a.state };
  });
}

/** States of a CycloneDX VEX analysis that leave a component affected. */
const UNRESOLVED = new Set(['exploitable', 'in_triage']);

/**
 * The affected, unresolved component versions of a CycloneDX VEX document (JSON): for each
 * vulnerability whose analysis state is exploitable, in_triage or absent, each `affects[].ref`
 * that is a package URL with a version, or the bom-ref of a component of the document that has
 * one; with `affects[].versions`, each exact version whose status is affected (a version range
 * is refused: APX does not guess what a range covers). Resolved, not_affected and
 * false_positive analyses list nothing.
 */
export function vexAdvisories(vex: unknown, where: string): Advisory[] {
  const bad = (why: string) =>
    new VerificationError(CoreErrorCode.ATTESTATION_INVALID, `invalid VEX document ${where}: ${why}`, {
      hint: 'pass a CycloneDX VEX document (JSON) whose vulnerabilities[].affects name package URLs with versions',
    });
  if (!isObject(vex) || vex.bomFormat !== 'CycloneDX') throw bad('not a CycloneDX document');
  if (!Array.isArray(vex.vulnerabilities)) throw bad('it has no vulnerabilities list');
  const refs = new Map<string, string>();
  for (const c of bomComponents(vex)) {
    const ref = (c as { 'bom-ref'?: unknown })['bom-ref'];
    if (typeof ref === 'string' && typeof c.purl === 'string') refs.set(ref, c.purl);
  }
  const out: Advisory[] = [];
  vex.vulnerabilities.forEach((v: unknown, i: number) => {
    if (!isObject(v) || typeof v.id !== 'string' || v.id === '') throw bad(`vulnerabilities[${i}] has no id`);
    const id = v.id;
    const analysis = isObject(v.analysis) ? v.analysis : {};
    const state = typeof analysis.state === 'string' ? analysis.state : 'in_triage';
    if (!UNRESOLVED.has(state)) return;
    if (!Array.isArray(v.affects) || v.affects.length === 0) throw bad(`vulnerabilities[${i}] (${id}) affects nothing`);
    v.affects.forEach((a: unknown, j: number) => {
      const at = `vulnerabilities[${i}].affects[${j}]`;
      const ref = isObject(a) && typeof a.ref === 'string' ? a.ref : undefined;
      if (!ref) throw bad(`${at} has no ref`);
      const purl = refs.get(ref) ?? (PURL.test(ref) ? ref : undefined);
      if (!purl) throw bad(`${at} names ${ref}, neither a package URL nor a component of the document with one`);
      const base = purlParts(purl);
      const versions = isObject(a) && Array.isArray(a.versions) ? a.versions : undefined;
      if (!versions) {
        if (base.version === undefined) throw bad(`${at} names ${purl} without a version`);
        out.push({ id, purl, state });
        return;
      }
      versions.forEach((ver: unknown, k: number) => {
        if (!isObject(ver)) throw bad(`${at}.versions[${k}] is not an object`);
        if (ver.range !== undefined) throw bad(`${at}.versions[${k}] is a range; list exact versions`);
        if (typeof ver.version !== 'string') throw bad(`${at}.versions[${k}] has no version`);
        if ((ver.status ?? 'affected') !== 'affected') return;
        out.push({ id, purl: `${base.base}@${ver.version}`, state });
      });
    });
  });
  return out;
}

/** The advisory a component's package URL matches (same package, same version), if any. */
export function affectingAdvisory(purl: string, list: readonly Advisory[]): Advisory | undefined {
  const c = purlParts(decodeURIComponent(purl));
  return list.find((a) => {
    const x = purlParts(decodeURIComponent(a.purl));
    return x.base === c.base && x.version === c.version;
  });
}

/** The VULNERABLE_COMPONENT refusal (a load, or the unload of an artifact already serving). */
export function vulnerableComponent(environment: string, purl: string, advisory: Advisory): VerificationError {
  return new VerificationError(
    CoreErrorCode.VULNERABLE_COMPONENT,
    `vulnerable component in ${environment}: the SBOM names ${purl}, affected by ${advisory.id} (VEX: ${advisory.state})`,
    { hint: 'rebuild the artifact with a fixed version of the component, or resolve the advisory in the VEX document' },
  );
}

/** The requirements as written into the role (only what is set). */
export function attestationRequirementsJson(r: AttestationRequirements): Record<string, unknown> {
  return {
    ...(r.provenance ? { provenance: true } : {}),
    ...(r.sbom ? { sbom: true } : {}),
    ...(r.builderIds.length ? { builderIds: [...r.builderIds] } : {}),
    ...(r.sourceRepositories.length ? { sourceRepositories: [...r.sourceRepositories] } : {}),
    ...(r.compilerMin ? { compilerMin: r.compilerMin } : {}),
    ...(r.denyComponents.length ? { denyComponents: [...r.denyComponents] } : {}),
    ...(r.vulnerabilities.length ? { vulnerabilities: r.vulnerabilities.map((a) => ({ ...a })) } : {}),
  };
}

function violation(environment: string, why: string, hint: string): VerificationError {
  return new VerificationError(
    CoreErrorCode.ATTESTATION_POLICY_VIOLATION,
    `attestation policy violation in ${environment}: ${why}`,
    { hint },
  );
}

const list = (xs: readonly string[]) => `[${xs.join(' ')}]`;

/** Checks a verified provenance statement against the requirements. */
export function checkProvenance(statement: Record<string, unknown>, r: AttestationRequirements, environment: string): void {
  const p = predicateOf(statement, SLSA_PROVENANCE_V1_PREDICATE_TYPE) as {
    buildDefinition?: { externalParameters?: { source?: { repository?: unknown } } };
    runDetails?: { builder?: { id?: unknown } };
  };
  const builder = p.runDetails?.builder?.id;
  if (r.builderIds.length > 0 && !(typeof builder === 'string' && r.builderIds.includes(builder))) {
    throw violation(
      environment,
      `built by ${typeof builder === 'string' ? builder : '(no builder id)'}, not an allowed builder ${list(r.builderIds)}`,
      `build the artifact on an allowed builder, or allow this one with apx trust require --env ${environment} --builder-id ID`,
    );
  }
  const repo = p.buildDefinition?.externalParameters?.source?.repository;
  if (r.sourceRepositories.length > 0 && !(typeof repo === 'string' && r.sourceRepositories.includes(repo))) {
    throw violation(
      environment,
      `built from ${typeof repo === 'string' ? repo : '(no source repository)'}, not an allowed source repository ${list(r.sourceRepositories)}`,
      `build from an allowed repository, or allow it with apx trust require --env ${environment} --source-repo URL`,
    );
  }
}

/** The purl without qualifiers and subpath; and its version part, if any. */
function purlParts(purl: string): { base: string; version: string | undefined } {
  const bare = purl.split(/[?#]/)[0] as string;
  const at = bare.lastIndexOf('@');
  const slash = bare.lastIndexOf('/');
  return at > slash ? { base: bare.slice(0, at), version: bare.slice(at + 1) } : { base: bare, version: undefined };
}

/** Every component of a CycloneDX BOM (nested ones, the main component and tools included). */
export function bomComponents(bom: Record<string, unknown>): Array<{ name?: string; version?: string; purl?: string }> {
  const out: Array<{ name?: string; version?: string; purl?: string }> = [];
  const walk = (c: unknown) => {
    if (!isObject(c)) return;
    out.push(c as { name?: string; version?: string; purl?: string });
    if (Array.isArray(c.components)) c.components.forEach(walk);
  };
  const meta = bom.metadata as { component?: unknown; tools?: { components?: unknown } } | undefined;
  walk(meta?.component);
  if (Array.isArray(meta?.tools?.components)) meta.tools.components.forEach(walk);
  if (Array.isArray(bom.components)) bom.components.forEach(walk);
  return out;
}

/** The denied package URL an SBOM component matches, if any. */
export function deniedComponent(purl: string, deny: readonly string[]): string | undefined {
  const c = purlParts(decodeURIComponent(purl));
  return deny.find((d) => {
    const x = purlParts(decodeURIComponent(d));
    return x.base === c.base && (x.version === undefined || x.version === c.version);
  });
}

/** Checks a verified SBOM statement against the deny list and the VEX gate; returns the package URLs it names. */
export function checkSbom(statement: Record<string, unknown>, r: AttestationRequirements, environment: string): string[] {
  const bom = predicateOf(statement, CYCLONEDX_PREDICATE_TYPE);
  const purls: string[] = [];
  for (const c of bomComponents(bom)) {
    if (typeof c.purl !== 'string') continue;
    purls.push(c.purl);
    const advisory = affectingAdvisory(c.purl, r.vulnerabilities);
    if (advisory) throw vulnerableComponent(environment, c.purl, advisory);
    const denied = deniedComponent(c.purl, r.denyComponents);
    if (denied) {
      throw violation(
        environment,
        `the SBOM names ${c.purl}, denied by ${denied}`,
        'rebuild the artifact with a toolchain that does not contain the denied component',
      );
    }
  }
  return purls;
}

/** The compiler floor, judged on the signed binding's compiler string (`apx-policy/X.Y.Z wabt/...`). */
export function checkCompilerFloor(compilerVersion: string | null, r: AttestationRequirements, environment: string): void {
  if (!r.compilerMin) return;
  const version = /(?:^|\s)apx-policy\/(\S+)/.exec(compilerVersion ?? '')?.[1];
  if (!version || !isSemver(version) || compareSemver(version, r.compilerMin) < 0) {
    throw violation(
      environment,
      `compiled by ${version ? `apx-policy ${version}` : (compilerVersion ?? 'an unknown compiler')}, below the floor ${r.compilerMin}`,
      `recompile the policy with apx-policy ${r.compilerMin} or later`,
    );
  }
}
