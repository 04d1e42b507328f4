import { type ArtifactRef, formatArtifactRef, parseArtifactRef as parseCoreRef } from '@apx/core';
import { StorageError, StorageErrorCode } from './error.js';

export { type ArtifactRef, formatArtifactRef };

/** File suffixes of one published version, as written beside each other on disk. */
export const ARTIFACT_SUFFIX = '.wasm';
export const SIGNATURE_SUFFIX = '.wasm.sig';
export const BUNDLE_SUFFIX = '.wasm.sigstore.json';
/** Signed attestations beside the artifact (docs/security-model.md, "Attestations"). */
export const SBOM_SUFFIX = '.wasm.sbom.sigstore.json';
export const PROVENANCE_SUFFIX = '.wasm.provenance.sigstore.json';

/**
 * Core's reference parsing, with the storage error code: a bad object name is a storage
 * problem here (INVALID_NAME), not a verification verdict.
 */
export function parseArtifactRef(ref: string): ArtifactRef {
  try {
    return parseCoreRef(ref);
  } catch {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `invalid artifact reference: ${JSON.stringify(ref)}`, {
      hint: 'use <policy-id>@<semver>, e.g. pb-pay-v1@1.0.0 (policy id: lowercase letters, digits, ".", "_", "-")',
    });
  }
}

/** The object names of one version: `<ref>.wasm`, `.wasm.sig`, `.wasm.sigstore.json` and the attestations. */
export function versionObjectNames(ref: ArtifactRef): {
  artifact: string;
  signature: string;
  bundle: string;
  sbom: string;
  provenance: string;
} {
  const base = formatArtifactRef(ref);
  return {
    artifact: `${base}${ARTIFACT_SUFFIX}`,
    signature: `${base}${SIGNATURE_SUFFIX}`,
    bundle: `${base}${BUNDLE_SUFFIX}`,
    sbom: `${base}${SBOM_SUFFIX}`,
    provenance: `${base}${PROVENANCE_SUFFIX}`,
  };
}

/** Splits an object name such as `pb-pay-v1@1.0.0.wasm.sig` into its reference and suffix. */
export function parseVersionObjectName(name: string): { ref: ArtifactRef; suffix: string } | undefined {
  for (const suffix of [SBOM_SUFFIX, PROVENANCE_SUFFIX, BUNDLE_SUFFIX, SIGNATURE_SUFFIX, ARTIFACT_SUFFIX]) {
    if (name.endsWith(suffix)) {
      try {
        return { ref: parseArtifactRef(name.slice(0, -suffix.length)), suffix };
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

const OBJECT_NAME = /^[A-Za-z0-9._@+-]+(?:\/[A-Za-z0-9._@+-]+)*$/;

/**
 * Object names are relative to the store's prefix and may never escape it: no absolute
 * paths, no `.` or `..` segments, no backslashes or control characters.
 */
export function checkObjectName(name: string): string {
  const segments = name.split('/');
  if (name.length > 512 || !OBJECT_NAME.test(name) || segments.some((s) => s === '.' || s === '..')) {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `invalid object name: ${JSON.stringify(name)}`, {
      hint: 'object names are relative paths of letters, digits and "._@+-", e.g. pb-pay-v1@1.0.0.wasm',
    });
  }
  return name;
}

/** List prefixes follow the same rules, but may be empty or end in a partial segment. */
export function checkListPrefix(prefix: string): string {
  if (prefix !== '') checkObjectName(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}
