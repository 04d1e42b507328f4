// OCI registries as artifact stores: one version = one manifest whose layers are the wasm,
// its signature and its bundle, tagged with the version; one trust metadata file = one
// manifest with one layer, tagged with the file name. Mapping: docs/storage.md.
import { createHash } from 'node:crypto';
import { conflict, swapConflict } from '../conflict.js';
import { StorageError, StorageErrorCode } from '../error.js';
import { tooLarge } from '../limits.js';
import {
  type ArtifactRef,
  checkListPrefix,
  checkObjectName,
  formatArtifactRef,
  parseArtifactRef,
  parseVersionObjectName,
  versionObjectNames,
} from '../names.js';
import { invalidUrl, type NetworkStoreSettings } from '../open.js';
import type {
  ArtifactStore,
  GetOptions,
  ListOptions,
  PutOptions,
  PutOutcome,
  StoredVersion,
  SwapOptions,
  VersionedObject,
  VersionLimits,
  VersionObjects,
} from '../store.js';
import { type AttestationRequest, DEFAULT_MAX_BYTES, requestedAttestations } from '../store.js';
import {
  checkRepoPrefix,
  type Descriptor,
  EMPTY_CONFIG,
  EMPTY_CONFIG_BYTES,
  layerMediaType,
  layerRank,
  type Manifest,
  OCI_MANIFEST,
  POLICY_ANNOTATION,
  repositoryAndTag,
  TITLE,
  TRUST_AREA_NAMES,
  TRUST_LAYER,
  TRUST_NAME_ANNOTATION,
  tagToVersion,
  trustRepository,
  trustRepositoryAndTag,
  VERSION_ANNOTATION,
  WASM_CONFIG,
  WASM_LAYER,
} from './mapping.js';
import { mayReceiveCredentials, type RegistryAuth, RegistryClient } from './registry.js';

/**
 * Writers to one tag queue behind each other within a process. Registries offer no
 * compare-and-swap on tags, so across processes create-only and swap are check-then-write,
 * verified by reading the tag back (docs/storage.md, "Concurrency").
 */
const tagLocks = new Map<string, Promise<unknown>>();

async function withTagLock<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = tagLocks.get(key) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(work);
  const settled = run.catch(() => undefined);
  tagLocks.set(key, settled);
  try {
    return await run;
  } finally {
    if (tagLocks.get(key) === settled) tagLocks.delete(key);
  }
}

export class OciStore implements ArtifactStore {
  readonly url: string;
  readonly #client: RegistryClient;
  readonly #prefix: string;
  readonly #lockKey: string;

  constructor(options: { client: RegistryClient; repositoryPrefix: string; url: string; lockKey: string }) {
    this.#client = options.client;
    this.#prefix = options.repositoryPrefix;
    this.url = options.url;
    this.#lockKey = options.lockKey;
  }

  /**
   * `oci://host[:port]/repository-prefix` (https) or `oci+http://...` (plain http, for a
   * loopback or lab registry: an explicit choice, never a fallback). Credentials from the
   * environment: APX_OCI_USERNAME + APX_OCI_PASSWORD (Basic, also used for the registry's
   * token service) or APX_OCI_TOKEN (Bearer); refused with oci+http:// to a registry that is
   * not on this machine (they would cross the network in clear text).
   */
  static create(u: URL, settings: NetworkStoreSettings): OciStore {
    if (u.search || u.hash) throw invalidUrl(settings.url, 'OCI store URLs take no query or fragment');
    if (!u.host) throw invalidUrl(settings.url, 'no registry host');
    const prefix = checkRepoPrefix(decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, ''), settings.url);
    const scheme = u.protocol === 'oci+http:' ? 'http' : 'https';
    const auth: RegistryAuth = {};
    const { APX_OCI_USERNAME: user, APX_OCI_PASSWORD: pass, APX_OCI_TOKEN: token } = settings.env;
    if (token) auth.token = token;
    if (user !== undefined && pass !== undefined) {
      auth.username = user;
      auth.password = pass;
    }
    const base = `${scheme}://${u.host}`;
    if ((auth.token !== undefined || auth.username !== undefined) && !mayReceiveCredentials(new URL(base), new URL(base))) {
      throw invalidUrl(
        settings.url,
        'registry credentials (APX_OCI_USERNAME/APX_OCI_PASSWORD, APX_OCI_TOKEN) are sent only over https, or over plain http to a registry on this machine (loopback)',
        `use oci://${u.host}/${prefix} (https), or unset the credentials for an anonymous registry`,
      );
    }
    const client = new RegistryClient({ base, storeUrl: settings.url, timeoutMs: settings.timeoutMs, auth });
    return new OciStore({ client, repositoryPrefix: prefix, url: settings.url, lockKey: `${base}/${prefix}` });
  }

  /**
   * Where an object lives: a version file is one layer of its version's manifest; a trust
   * file (`tuf/<file>`, `tuf-staging/<file>`) is the only layer of its own manifest, titled
   * with the file name.
   */
  #target(name: string): Target {
    const trust = trustRepositoryAndTag(this.#prefix, checkObjectName(name));
    if (trust) return { kind: 'trust', name, title: trust.tag, repository: trust.repository, tag: trust.tag };
    const parsed = parseVersionObjectName(name);
    if (!parsed) {
      throw new StorageError(
        StorageErrorCode.INVALID_NAME,
        `an OCI store holds only version files and trust files, not ${JSON.stringify(name)}`,
        {
          hint: 'names are <policy-id>@<semver>.wasm, .wasm.sig or .wasm.sigstore.json, or tuf/<file> and tuf-staging/<file>',
        },
      );
    }
    return { kind: 'version', name, title: name, ref: parsed.ref, ...repositoryAndTag(this.#prefix, parsed.ref) };
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    return (await this.getVersioned(name, options))?.bytes;
  }

  /** The token is the digest of the manifest the bytes were read through. */
  async getVersioned(name: string, options: GetOptions = {}): Promise<VersionedObject | undefined> {
    const t = this.#target(name);
    const found = await this.#client.getManifest(t.repository, t.tag, options.signal);
    if (!found) return undefined;
    const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const bytes = await this.#layer(t.repository, found.manifest, t.title, max, options.signal, name);
    return bytes === undefined ? undefined : { bytes, token: found.digest };
  }

  /** The three files from one manifest: never an artifact of one push with another's signature. */
  async getVersion(
    refText: string,
    limits: VersionLimits,
    options: { signal?: AbortSignal; attestations?: AttestationRequest } = {},
  ): Promise<StoredVersion | undefined> {
    const ref = parseArtifactRef(refText);
    const { repository, tag } = repositoryAndTag(this.#prefix, ref);
    const names = versionObjectNames(ref);
    const found = await this.#client.getManifest(repository, tag, options.signal);
    if (!found) return undefined;
    const artifact = await this.#layer(repository, found.manifest, names.artifact, limits.artifact, options.signal);
    if (!artifact) return undefined;
    const [signature, bundle] = await Promise.all([
      this.#layer(repository, found.manifest, names.signature, limits.signature, options.signal),
      this.#layer(repository, found.manifest, names.bundle, limits.bundle, options.signal),
    ]);
    const version: StoredVersion = { artifact, signature, bundle };
    const kinds = requestedAttestations(options.attestations);
    const attestations = await Promise.all(
      kinds.map((kind) => this.#layer(repository, found.manifest, names[kind], limits.bundle, options.signal)),
    );
    kinds.forEach((kind, i) => {
      version[kind] = attestations[i];
    });
    return version;
  }

  async #layer(
    repository: string,
    manifest: Manifest,
    name: string,
    max: number,
    signal: AbortSignal | undefined,
    objectName = name,
  ): Promise<Buffer | undefined> {
    const layer = manifest.layers.find((l) => l.annotations?.[TITLE] === name);
    if (!layer) return undefined;
    // The manifest announces the size: an oversized artifact costs no download.
    if (!Number.isSafeInteger(layer.size) || layer.size < 0) {
      throw new StorageError(StorageErrorCode.INTEGRITY, `manifest of ${objectName} in ${this.url} has an invalid layer size`, {
        hint: 'the manifest was not written by apx; write the object again',
      });
    }
    if (layer.size > max) throw tooLarge(this.url, objectName, layer.size, max);
    return this.#client.getBlob(repository, layer, objectName, signal);
  }

  /**
   * Adds or replaces one file: the tag's manifest is read, changed and pushed whole.
   * `publishArtifact` uses putVersion instead, which writes a version's three files at once.
   */
  async put(name: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    const t = this.#target(name);
    return withTagLock(this.#tagKey(t), async () => {
      const signal = options.signal;
      const existing = await this.#client.getManifest(t.repository, t.tag, signal);
      const same = existing?.manifest.layers.find((l) => l.annotations?.[TITLE] === t.title);
      if (same) {
        if (same.digest === sha256(bytes)) return 'unchanged';
        if (options.ifAbsent) throw conflict(this.url, name);
      }
      const pushed = await this.#pushFile(t, existing?.manifest.layers ?? [], bytes, signal);
      if (options.ifAbsent) {
        // Another process may have pushed the same tag meanwhile: only one manifest can be there.
        const after = await this.#client.getManifest(t.repository, t.tag, signal);
        if (after?.digest !== pushed) throw conflict(this.url, name);
      }
      return 'created';
    });
  }

  /**
   * Registries have no conditional tag write. So: queue behind this process's other writers
   * of the tag, compare the tag's current manifest digest with `expected`, push, then read
   * the tag back; another manifest there means another writer won (docs/storage.md,
   * "Concurrency", for the window this leaves between processes).
   */
  async swap(name: string, bytes: Uint8Array, expected: string | null, options: SwapOptions = {}): Promise<string> {
    const t = this.#target(name);
    return withTagLock(this.#tagKey(t), async () => {
      const signal = options.signal;
      const existing = await this.#client.getManifest(t.repository, t.tag, signal);
      const holds = existing?.manifest.layers.some((l) => l.annotations?.[TITLE] === t.title) === true;
      const current = holds ? existing?.digest : undefined;
      if (expected === null ? current !== undefined : current !== expected) throw swapConflict(this.url, name, expected);
      const pushed = await this.#pushFile(t, existing?.manifest.layers ?? [], bytes, signal);
      const after = await this.#client.getManifest(t.repository, t.tag, signal);
      if (after?.digest !== pushed) throw swapConflict(this.url, name, expected);
      return pushed;
    });
  }

  #tagKey(t: Target): string {
    return `${this.#lockKey}/${t.repository}:${t.tag}`;
  }

  /** Pushes the file's blob, then its manifest (a version's other layers kept); returns the manifest digest. */
  async #pushFile(t: Target, layers: Descriptor[], bytes: Uint8Array, signal: AbortSignal | undefined): Promise<string> {
    if (t.kind === 'trust') {
      const digest = await this.#client.pushBlob(t.repository, bytes, signal);
      const layer = { mediaType: TRUST_LAYER, digest, size: bytes.byteLength, annotations: { [TITLE]: t.title } };
      return this.#pushTrustManifest(t.repository, t.tag, t.name, layer, signal);
    }
    const layer = await this.#pushLayer(t.repository, t.name, bytes, signal);
    const next = layers.filter((l) => l.annotations?.[TITLE] !== t.name).concat(layer);
    return this.#pushManifest(t.repository, t.tag, t.ref, next, signal);
  }

  /**
   * One manifest naming the wasm, the signature and the bundle: a reader resolves the tag
   * to all three or to nothing. Create-only: an existing tag with the same artifact is a
   * no-op, with another artifact a CONFLICT.
   */
  async putVersion(refText: string, objects: VersionObjects, options: { signal?: AbortSignal } = {}): Promise<PutOutcome> {
    const ref = parseArtifactRef(refText);
    const { repository, tag } = repositoryAndTag(this.#prefix, ref);
    const names = versionObjectNames(ref);
    return withTagLock(`${this.#lockKey}/${repository}:${tag}`, async () => {
      const signal = options.signal;
      const check = async (): Promise<PutOutcome | undefined> => {
        const existing = await this.#client.getManifest(repository, tag, signal);
        if (!existing) return undefined;
        const wasm = existing.manifest.layers.find((l) => l.annotations?.[TITLE] === names.artifact);
        if (wasm?.digest === sha256(objects.artifact)) return 'unchanged';
        throw conflict(this.url, `${names.artifact} (${repository}:${tag})`);
      };
      const before = await check();
      if (before) return before;
      // Blobs first: a manifest may only name blobs the registry already has.
      const layers = [
        await this.#pushLayer(repository, names.artifact, objects.artifact, signal),
        await this.#pushLayer(repository, names.signature, objects.signature, signal),
        ...(objects.bundle ? [await this.#pushLayer(repository, names.bundle, objects.bundle, signal)] : []),
        ...(objects.sbom ? [await this.#pushLayer(repository, names.sbom, objects.sbom, signal)] : []),
        ...(objects.provenance ? [await this.#pushLayer(repository, names.provenance, objects.provenance, signal)] : []),
      ];
      const pushed = await this.#pushManifest(repository, tag, ref, layers, signal);
      // Another process may have pushed the same tag meanwhile: only one manifest can be there.
      const after = await this.#client.getManifest(repository, tag, signal);
      if (after && after.digest !== pushed) throw conflict(this.url, `${names.artifact} (${repository}:${tag})`);
      return 'created';
    });
  }

  /**
   * Trust files by their repository's tags; version files through the catalog (or only
   * `tags/list` when the prefix names a policy id with `@`, as many hosted registries
   * disable the catalog). A trust repository that does not exist lists as empty.
   */
  async list(prefix = '', options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const signal = options.signal;
    const out: string[] = [];
    const areas = TRUST_AREA_NAMES.filter((a) => `${a}/`.startsWith(prefix) || prefix.startsWith(`${a}/`));
    if (prefix.includes('/')) {
      // Only trust names have a "/": no catalog needed.
      for (const area of areas) out.push(...(await this.#trustNames(area, prefix, signal)));
      return out.sort();
    }
    const at = prefix.indexOf('@');
    let policyIds: string[];
    if (at > 0) {
      policyIds = [prefix.slice(0, at)];
    } else {
      const base = this.#prefix === '' ? '' : `${this.#prefix}/`;
      const catalog = await this.#client.catalog(signal);
      policyIds = catalog
        .filter((r) => r.startsWith(base) && !r.slice(base.length).includes('/'))
        .map((r) => r.slice(base.length))
        .filter((id) => id.startsWith(prefix));
      // The catalog says which trust repositories exist: no request for one that does not.
      for (const area of areas) {
        if (catalog.includes(trustRepository(this.#prefix, area))) out.push(...(await this.#trustNames(area, prefix, signal)));
      }
    }
    for (const id of policyIds) {
      let repository: string;
      try {
        repository = repositoryAndTag(this.#prefix, { policyId: id, version: '0.0.0' }).repository;
      } catch {
        continue;
      }
      for (const tag of await this.#client.listTags(repository, signal)) {
        const refText = `${id}@${tagToVersion(tag)}`;
        if (!refText.startsWith(prefix) && !prefix.startsWith(refText)) continue;
        const found = await this.#client.getManifest(repository, tag, signal);
        for (const l of found?.manifest.layers ?? []) {
          const title = l.annotations?.[TITLE];
          if (title?.startsWith(prefix) && parseVersionObjectName(title)) out.push(title);
        }
      }
    }
    return [...new Set(out)].sort();
  }

  async #trustNames(area: (typeof TRUST_AREA_NAMES)[number], prefix: string, signal: AbortSignal | undefined): Promise<string[]> {
    const tags = await this.#client.listTags(trustRepository(this.#prefix, area), signal);
    return tags.map((tag) => `${area}/${tag}`).filter((n) => n.startsWith(prefix));
  }

  async #pushLayer(repository: string, name: string, bytes: Uint8Array, signal: AbortSignal | undefined): Promise<Descriptor> {
    const digest = await this.#client.pushBlob(repository, bytes, signal);
    return { mediaType: layerMediaType(name), digest, size: bytes.byteLength, annotations: { [TITLE]: name } };
  }

  /** Deterministic: the same files give the same manifest bytes, hence the same digest. */
  async #pushManifest(
    repository: string,
    tag: string,
    ref: ArtifactRef,
    layers: Descriptor[],
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const title = (d: Descriptor) => d.annotations?.[TITLE] ?? '';
    const sorted = [...layers].sort(
      (a, b) => layerRank(a) - layerRank(b) || (title(a) < title(b) ? -1 : title(a) > title(b) ? 1 : 0),
    );
    const wasmDigests = sorted.filter((l) => l.mediaType === WASM_LAYER).map((l) => l.digest);
    const config = Buffer.from(JSON.stringify({ architecture: 'wasm', os: 'apx', layerDigests: wasmDigests }));
    const configDigest = await this.#client.pushBlob(repository, config, signal);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: WASM_CONFIG, digest: configDigest, size: config.byteLength },
      layers: sorted,
      annotations: { [TITLE]: formatArtifactRef(ref), [POLICY_ANNOTATION]: ref.policyId, [VERSION_ANNOTATION]: ref.version },
    };
    const raw = Buffer.from(JSON.stringify(manifest));
    await this.#client.putManifest(repository, tag, raw, signal);
    return sha256(raw);
  }

  /**
   * One trust file: image-spec 1.1's empty config, one layer titled with the file name.
   * Deterministic, like version manifests: equal bytes give an equal digest.
   */
  async #pushTrustManifest(
    repository: string,
    tag: string,
    name: string,
    layer: Descriptor,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const configDigest = await this.#client.pushBlob(repository, EMPTY_CONFIG_BYTES, signal);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: EMPTY_CONFIG, digest: configDigest, size: EMPTY_CONFIG_BYTES.byteLength },
      layers: [layer],
      annotations: { [TRUST_NAME_ANNOTATION]: name },
    };
    const raw = Buffer.from(JSON.stringify(manifest));
    await this.#client.putManifest(repository, tag, raw, signal);
    return sha256(raw);
  }
}

/** Where one object name lives: its repository, tag, and the title of its layer. */
type Target =
  | { kind: 'version'; name: string; title: string; ref: ArtifactRef; repository: string; tag: string }
  | { kind: 'trust'; name: string; title: string; repository: string; tag: string };

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
