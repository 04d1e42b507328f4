import { IN_TOTO_STATEMENT_V1 } from '../bundle/verify.js';
import { CoreErrorCode, VerificationError } from '../error.js';

/** in-toto predicate type of a CycloneDX SBOM (any spec version; the BOM says which). */
export const CYCLONEDX_PREDICATE_TYPE = 'https://cyclonedx.org/bom';
/** in-toto predicate type of SLSA provenance v1 (https://slsa.dev/spec/v1.0/provenance). */
export const SLSA_PROVENANCE_V1_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';

/** The attestations APX writes beside an artifact, and the file suffix of each bundle. */
export const ATTESTATION_KINDS = {
  sbom: { suffix: '.sbom.sigstore.json', predicateType: CYCLONEDX_PREDICATE_TYPE, what: 'SBOM' },
  provenance: { suffix: '.provenance.sigstore.json', predicateType: SLSA_PROVENANCE_V1_PREDICATE_TYPE, what: 'provenance' },
} as const;
export type AttestationKind = keyof typeof ATTESTATION_KINDS;

/** `<artifact>.wasm.sbom.sigstore.json`, `<artifact>.wasm.provenance.sigstore.json`. */
export function attestationFileName(artifactFile: string, kind: AttestationKind): string {
  return `${artifactFile}${ATTESTATION_KINDS[kind].suffix}`;
}

/**
 * cosign's `--type` names (attest-blob, verify-blob-attestation) and the predicate type each
 * stands for; anything else must be a URI and is taken as the predicate type itself.
 */
export const COSIGN_PREDICATE_TYPES: Readonly<Record<string, string>> = {
  custom: 'https://cosign.sigstore.dev/attestation/v1',
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: SLSA_PROVENANCE_V1_PREDICATE_TYPE,
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: CYCLONEDX_PREDICATE_TYPE,
  link: 'https://in-toto.io/Link/v1',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
};

/** The predicate type a `--type` value names; undefined when it is neither a known name nor a URI. */
export function predicateTypeOf(type: string): string | undefined {
  const known = COSIGN_PREDICATE_TYPES[type];
  if (known) return known;
  try {
    const url = new URL(type);
    return url.protocol && url.host ? type : undefined;
  } catch {
    return undefined;
  }
}

/** An in-toto Statement v1 over one artifact (its only subject, by SHA-256). */
export function attestationStatement(
  subject: { name: string; sha256: string },
  predicateType: string,
  predicate: Record<string, unknown>,
): Record<string, unknown> {
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: subject.name, digest: { sha256: subject.sha256 } }],
    predicateType,
    predicate,
  };
}

/**
 * The predicate of a verified statement, when its type is the one asked for (cosign
 * verify-blob-attestation refuses a statement of another type the same way).
 */
export function predicateOf(statement: Record<string, unknown>, predicateType: string): Record<string, unknown> {
  if (statement.predicateType !== predicateType) {
    throw new VerificationError(
      CoreErrorCode.ATTESTATION_INVALID,
      `attestation has predicate type ${String(statement.predicateType)}, expected ${predicateType}`,
      { hint: 'pass the attestation of that type, or the --type it was made with' },
    );
  }
  const predicate = statement.predicate ?? {};
  if (typeof predicate !== 'object' || predicate === null || Array.isArray(predicate)) {
    throw new VerificationError(CoreErrorCode.ATTESTATION_INVALID, 'attestation predicate is not a JSON object');
  }
  return predicate as Record<string, unknown>;
}
