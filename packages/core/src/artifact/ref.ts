import { CoreErrorCode, VerificationError } from '../error.js';

/** A policy artifact's name: `<policy-id>@<semver>`, e.g. `pb-pay-v1@1.0.0`. */
export interface ArtifactRef {
  readonly policyId: string;
  readonly version: string;
}

/** Policy ids: lowercase, digits, `.`, `_`, `-`; safe in file names, object keys and OCI repositories. */
const POLICY_ID = /^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$/;
/** Semantic Versioning 2.0.0, the regular expression published with the specification. */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function isPolicyId(text: string): boolean {
  return POLICY_ID.test(text);
}

export function isSemver(text: string): boolean {
  return SEMVER.test(text);
}

export function parseArtifactRef(text: string): ArtifactRef {
  const at = text.lastIndexOf('@');
  const policyId = at < 0 ? text : text.slice(0, at);
  const version = at < 0 ? '' : text.slice(at + 1);
  if (at < 0 || !POLICY_ID.test(policyId) || !SEMVER.test(version)) {
    throw new VerificationError(CoreErrorCode.REF_INVALID, `invalid policy reference "${text}"`, {
      hint: 'write <policy-id>@<semver>, e.g. pb-pay-v1@1.0.0',
    });
  }
  return { policyId, version };
}

export function formatArtifactRef(ref: ArtifactRef): string {
  return `${ref.policyId}@${ref.version}`;
}

/** The artifact's file and object name: `pb-pay-v1@1.0.0.wasm`. */
export function artifactFileName(ref: ArtifactRef): string {
  return `${formatArtifactRef(ref)}.wasm`;
}
