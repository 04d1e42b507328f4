import { StorageError, StorageErrorCode } from './error.js';

/** File suffixes of one published version, as written beside each other on disk. */
export const ARTIFACT_SUFFIX = '.wasm';
export const SIGNATURE_SUFFIX = '.wasm.sig';
export const BUNDLE_SUFFIX = '.wasm.sigstore.json';

/** `<policy-id>@<semver>`, e.g. `pb-pay-v1@1.0.0`. */
export interface ArtifactRef {
  readonly policyId: string;
  readonly version: string;
}

const POLICY_ID = /^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$/;
// semver.org 2.0.0, the official regular expression.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function parseArtifactRef(ref: string): ArtifactRef {
  const at = ref.lastIndexOf('@');
  const policyId = at > 0 ? ref.slice(0, at) : '';
  const version = at > 0 ? ref.slice(at + 1) : '';
  if (!POLICY_ID.test(policyId) || !SEMVER.test(version)) {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `invalid artifact reference: ${JSON.stringify(ref)}`, {
      hint: 'use <policy-id>@<semver>, e.g. pb-pay-v1@1.0.0 (policy id: lowercase letters, digits, ".", "_", "-")',
    });
  }
  return { policyId, version };
}

export function formatArtifactRef(ref: ArtifactRef): string {
  return `${ref.policyId}@${ref.version}`;
}

/** The three object names of one version: `<ref>.wasm`, `.wasm.sig`, `.wasm.sigstore.json`. */
export function versionObjectNames(ref: ArtifactRef): { artifact: string; signature: string; bundle: string } {
  const base = formatArtifactRef(ref);
  return { artifact: `${base}${ARTIFACT_SUFFIX}`, signature: `${base}${SIGNATURE_SUFFIX}`, bundle: `${base}${BUNDLE_SUFFIX}` };
}

/** Splits an object name such as `pb-pay-v1@1.0.0.wasm.sig` into its reference and suffix. */
export function parseVersionObjectName(name: string): { ref: ArtifactRef; suffix: string } | undefined {
  for (const suffix of [BUNDLE_SUFFIX, SIGNATURE_SUFFIX, ARTIFACT_SUFFIX]) {
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
