// How one APX version maps onto an OCI registry (documented in docs/storage.md).
import { StorageError, StorageErrorCode } from '../error.js';
import type { ArtifactRef } from '../names.js';

/** OCI image manifest (image-spec v1.1). */
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** CNCF TAG Runtime "Wasm OCI Artifact" layout: config and layer media types. */
export const WASM_CONFIG = 'application/vnd.wasm.config.v0+json';
export const WASM_LAYER = 'application/vnd.wasm.content.layer.v1+wasm';
/** The detached signature file (base64 of DER ECDSA), as `<artifact>.sig`. */
export const SIGNATURE_LAYER = 'application/vnd.dev.apx.signature.v1+base64';
/** The Sigstore bundle, as `<artifact>.sigstore.json`. */
export const BUNDLE_LAYER = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** Layer annotation tools such as oras use as the file name to write. */
export const TITLE = 'org.opencontainers.image.title';
export const VERSION_ANNOTATION = 'dev.apx.policy.version';
export const POLICY_ANNOTATION = 'dev.apx.policy.id';

// distribution-spec: repository path components and tags.
const REPO_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * `pb-pay-v1@1.0.0` → repository `<prefix>/pb-pay-v1`, tag `1.0.0`. Tags cannot hold `+`,
 * so semver build metadata `1.0.0+build.7` becomes `1.0.0_build.7`; semver never contains
 * `_`, so the mapping is reversible.
 */
export function repositoryAndTag(repoPrefix: string, ref: ArtifactRef): { repository: string; tag: string } {
  const repository = repoPrefix === '' ? ref.policyId : `${repoPrefix}/${ref.policyId}`;
  if (!REPO_COMPONENT.test(ref.policyId) || repository.length > 255) {
    throw new StorageError(
      StorageErrorCode.INVALID_NAME,
      `policy id ${JSON.stringify(ref.policyId)} is not a valid OCI repository name`,
      {
        hint: 'OCI repository components are lowercase letters and digits separated by ".", "_", "__" or "-"',
      },
    );
  }
  const tag = ref.version.replace('+', '_');
  if (!TAG.test(tag)) {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `version ${ref.version} does not fit an OCI tag (128 characters max)`, {
      hint: 'shorten the pre-release or build metadata of the version',
    });
  }
  return { repository, tag };
}

/** Trust metadata (TUF) files: one manifest with one layer each. */
export const TRUST_LAYER = 'application/vnd.apx.trust.metadata.v1+json';
/** image-spec 1.1's empty config for artifacts that need none. */
export const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
export const EMPTY_CONFIG_BYTES = Buffer.from('{}');
export const TRUST_NAME_ANNOTATION = 'dev.apx.trust.name';

/** Object-name area → repository under the store's prefix (two components: no policy id can equal it). */
const TRUST_AREAS = { tuf: 'apx-trust/metadata', 'tuf-staging': 'apx-trust/staging' } as const;
export type TrustArea = keyof typeof TRUST_AREAS;
export const TRUST_AREA_NAMES = Object.keys(TRUST_AREAS) as TrustArea[];

/** `tuf/1.root.json` → repository `<prefix>/apx-trust/metadata`, tag `1.root.json`; else undefined. */
export function trustRepositoryAndTag(
  repoPrefix: string,
  name: string,
): { area: TrustArea; repository: string; tag: string } | undefined {
  const slash = name.indexOf('/');
  const area = name.slice(0, slash);
  if (slash < 0 || !(area in TRUST_AREAS)) return undefined;
  const tag = name.slice(slash + 1);
  if (!TAG.test(tag)) {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `trust file name ${JSON.stringify(tag)} is not a valid OCI tag`, {
      hint: 'trust files are tuf/<file> or tuf-staging/<file>, <file> of letters, digits, ".", "_", "-" (128 at most), e.g. tuf/1.root.json',
    });
  }
  return { area: area as TrustArea, repository: trustRepository(repoPrefix, area as TrustArea), tag };
}

export function trustRepository(repoPrefix: string, area: TrustArea): string {
  return repoPrefix === '' ? TRUST_AREAS[area] : `${repoPrefix}/${TRUST_AREAS[area]}`;
}

export function tagToVersion(tag: string): string {
  return tag.replace('_', '+');
}

export function checkRepoPrefix(prefix: string, url: string): string {
  if (prefix !== '' && !prefix.split('/').every((c) => REPO_COMPONENT.test(c))) {
    throw new StorageError(
      StorageErrorCode.INVALID_URL,
      `invalid store URL ${url}: ${JSON.stringify(prefix)} is not a repository path`,
      {
        hint: 'use oci://host[:port]/lowercase/path, e.g. oci://registry.example.com/apx/policies',
      },
    );
  }
  return prefix;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export function layerMediaType(name: string): string {
  // The artifact's bundle and its attestations (.wasm.sbom.sigstore.json...) are all Sigstore bundles.
  if (name.endsWith('.sigstore.json')) return BUNDLE_LAYER;
  if (name.endsWith('.wasm.sig')) return SIGNATURE_LAYER;
  return WASM_LAYER;
}

/** Layer order is fixed (wasm, signature, bundle) so equal content gives an equal manifest. */
export function layerRank(d: Descriptor): number {
  return [WASM_LAYER, SIGNATURE_LAYER, BUNDLE_LAYER].indexOf(d.mediaType);
}
