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
      r.denyComponents.length === 0)
  );
}

/** The attestation kinds the requirements make mandatory. */
export function requiredKinds(r: AttestationRequirements): AttestationKind[] {
  const kinds: AttestationKind[] = [];
  if (r.sbom || r.denyComponents.length > 0) kinds.push('sbom');
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
  const known = new Set(['provenance', 'sbom', 'builderIds', 'sourceRepositories', 'compilerMin', 'denyComponents']);
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
  };
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

/** Checks a verified SBOM statement against the deny list. */
export function checkSbom(statement: Record<string, unknown>, r: AttestationRequirements, environment: string): void {
  const bom = predicateOf(statement, CYCLONEDX_PREDICATE_TYPE);
  for (const c of bomComponents(bom)) {
    if (typeof c.purl !== 'string') continue;
    const denied = deniedComponent(c.purl, r.denyComponents);
    if (denied) {
      throw violation(
        environment,
        `the SBOM names ${c.purl}, denied by ${denied}`,
        'rebuild the artifact with a toolchain that does not contain the denied component',
      );
    }
  }
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
