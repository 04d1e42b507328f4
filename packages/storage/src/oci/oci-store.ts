// OCI registries as artifact stores: one version = one manifest whose layers are the wasm,
// its signature and its bundle, tagged with the version. Mapping: docs/storage.md.
import { createHash } from 'node:crypto';
import { conflict } from '../conflict.js';
import { StorageError, StorageErrorCode } from '../error.js';
import { tooLarge } from '../limits.js';
import {
  type ArtifactRef,
  checkListPrefix,
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
  VersionLimits,
  VersionObjects,
} from '../store.js';
import { DEFAULT_MAX_BYTES } from '../store.js';
import {
  checkRepoPrefix,
  type Descriptor,
  layerMediaType,
  layerRank,
  type Manifest,
  OCI_MANIFEST,
  POLICY_ANNOTATION,
  repositoryAndTag,
  TITLE,
  tagToVersion,
  VERSION_ANNOTATION,
  WASM_CONFIG,
  WASM_LAYER,
} from './mapping.js';
import { type RegistryAuth, RegistryClient } from './registry.js';

/**
 * Writers to one tag queue behind each other within a process. Registries offer no
 * compare-and-swap on tags, so across processes create-only is check-then-write, verified
 * by reading the tag back (docs/storage.md, "Concurrency").
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
   * token service) or APX_OCI_TOKEN (Bearer).
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
    const client = new RegistryClient({ base, storeUrl: settings.url, timeoutMs: settings.timeoutMs, auth });
    return new OciStore({ client, repositoryPrefix: prefix, url: settings.url, lockKey: `${base}/${prefix}` });
  }

  #locate(name: string): { ref: ArtifactRef; repository: string; tag: string } {
    const parsed = parseVersionObjectName(name);
    if (!parsed) {
      throw new StorageError(
        StorageErrorCode.INVALID_NAME,
        `an OCI store holds only version files, not ${JSON.stringify(name)}`,
        {
          hint: 'names are <policy-id>@<semver>.wasm, .wasm.sig or .wasm.sigstore.json',
        },
      );
    }
    return { ref: parsed.ref, ...repositoryAndTag(this.#prefix, parsed.ref) };
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    const { repository, tag } = this.#locate(name);
    const found = await this.#client.getManifest(repository, tag, options.signal);
    if (!found) return undefined;
    return this.#layer(repository, found.manifest, name, options.maxBytes ?? DEFAULT_MAX_BYTES, options.signal);
  }

  /** The three files from one manifest: never an artifact of one push with another's signature. */
  async getVersion(
    refText: string,
    limits: VersionLimits,
    options: { signal?: AbortSignal } = {},
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
    return { artifact, signature, bundle };
  }

  async #layer(
    repository: string,
    manifest: Manifest,
    name: string,
    max: number,
    signal: AbortSignal | undefined,
  ): Promise<Buffer | undefined> {
    const layer = manifest.layers.find((l) => l.annotations?.[TITLE] === name);
    if (!layer) return undefined;
    // The manifest announces the size: an oversized artifact costs no download.
    if (!Number.isSafeInteger(layer.size) || layer.size < 0) {
      throw new StorageError(StorageErrorCode.INTEGRITY, `manifest of ${name} in ${this.url} has an invalid layer size`, {
        hint: 'the manifest was not written by apx publish; republish the version',
      });
    }
    if (layer.size > max) throw tooLarge(this.url, name, layer.size, max);
    return this.#client.getBlob(repository, layer, name, signal);
  }

  /**
   * Adds or replaces one file of a version: the tag's manifest is read, changed and pushed
   * whole. `publishArtifact` uses putVersion instead, which writes all three at once.
   */
  async put(name: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    const { ref, repository, tag } = this.#locate(name);
    return withTagLock(`${this.#lockKey}/${repository}:${tag}`, async () => {
      const signal = options.signal;
      const existing = await this.#client.getManifest(repository, tag, signal);
      const digest = sha256(bytes);
      const layers = existing?.manifest.layers ?? [];
      const same = layers.find((l) => l.annotations?.[TITLE] === name);
      if (same) {
        if (same.digest === digest) return 'unchanged';
        if (options.ifAbsent) throw conflict(this.url, name);
      }
      const layer = await this.#pushLayer(repository, name, bytes, signal);
      const next = layers.filter((l) => l.annotations?.[TITLE] !== name).concat(layer);
      await this.#pushManifest(repository, tag, ref, next, signal);
      return 'created';
    });
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
      ];
      const pushed = await this.#pushManifest(repository, tag, ref, layers, signal);
      // Another process may have pushed the same tag meanwhile: only one manifest can be there.
      const after = await this.#client.getManifest(repository, tag, signal);
      if (after && after.digest !== pushed) throw conflict(this.url, `${names.artifact} (${repository}:${tag})`);
      return 'created';
    });
  }

  async list(prefix = '', options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const at = prefix.indexOf('@');
    let policyIds: string[];
    if (at > 0) {
      policyIds = [prefix.slice(0, at)];
    } else {
      const base = this.#prefix === '' ? '' : `${this.#prefix}/`;
      policyIds = (await this.#client.catalog(options.signal))
        .filter((r) => r.startsWith(base) && !r.slice(base.length).includes('/'))
        .map((r) => r.slice(base.length))
        .filter((id) => id.startsWith(prefix));
    }
    const out: string[] = [];
    for (const id of policyIds) {
      let repository: string;
      try {
        repository = repositoryAndTag(this.#prefix, { policyId: id, version: '0.0.0' }).repository;
      } catch {
        continue;
      }
      for (const tag of await this.#client.listTags(repository, options.signal)) {
        const refText = `${id}@${tagToVersion(tag)}`;
        if (!refText.startsWith(prefix) && !prefix.startsWith(refText)) continue;
        const found = await this.#client.getManifest(repository, tag, options.signal);
        for (const l of found?.manifest.layers ?? []) {
          const title = l.annotations?.[TITLE];
          if (title?.startsWith(prefix) && parseVersionObjectName(title)) out.push(title);
        }
      }
    }
    return [...new Set(out)].sort();
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
    const sorted = [...layers].sort((a, b) => layerRank(a) - layerRank(b));
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
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
