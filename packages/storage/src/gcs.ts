// Google Cloud Storage through the official client (@google-cloud/storage 7; v8 needs
// Node 22). Imported only when a gs:// URL is opened.
import type { Readable } from 'node:stream';
import { type Bucket, Storage, type StorageOptions } from '@google-cloud/storage';
import { compareExisting, swapConflict } from './conflict.js';
import { StorageError } from './error.js';
import { deadline, readCapped, tooLarge } from './limits.js';
import { checkListPrefix, checkObjectName } from './names.js';
import { denied, isNetworkFailure, requestFailed, unreachable } from './net.js';
import { bucketAndPrefix, type NetworkStoreSettings } from './open.js';
import type { ArtifactStore, GetOptions, ListOptions, PutOptions, PutOutcome, SwapOptions, VersionedObject } from './store.js';
import { DEFAULT_ATTEMPTS, DEFAULT_MAX_BYTES } from './store.js';

export interface GcsStoreOptions {
  bucket: Bucket;
  /** Object-name prefix, empty or ending in "/". */
  prefix: string;
  url: string;
  timeoutMs: number;
  /** A download with no byte for this long is abandoned (create(): half the timeout). */
  idleMs?: number;
}

export class GcsStore implements ArtifactStore {
  readonly url: string;
  readonly #o: GcsStoreOptions;

  constructor(options: GcsStoreOptions) {
    this.#o = options;
    this.url = options.url;
  }

  /**
   * `gs://bucket/prefix[?endpoint=URL]`; the endpoint may also come from APX_GCS_ENDPOINT
   * (the client itself honours STORAGE_EMULATOR_HOST). Credentials: Application Default
   * Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity); none with a custom
   * endpoint, as for the emulators.
   */
  static create(u: URL, settings: NetworkStoreSettings): GcsStore {
    const { bucket, prefix } = bucketAndPrefix(u);
    const endpoint = u.searchParams.get('endpoint') ?? settings.env.APX_GCS_ENDPOINT;
    const options: StorageOptions = {
      timeout: settings.timeoutMs,
      retryOptions: {
        autoRetry: true,
        maxRetries: DEFAULT_ATTEMPTS - 1,
        maxRetryDelay: 2,
        totalTimeout: Math.ceil((settings.timeoutMs * DEFAULT_ATTEMPTS) / 1000),
      },
    };
    if (endpoint) options.apiEndpoint = endpoint;
    const project = u.searchParams.get('project') ?? settings.env.GOOGLE_CLOUD_PROJECT;
    if (project) options.projectId = project;
    return new GcsStore({
      bucket: new Storage(options).bucket(bucket),
      prefix,
      url: settings.url,
      timeoutMs: settings.timeoutMs,
      idleMs: Math.ceil(settings.timeoutMs / 2),
    });
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    return (await this.#read(name, options))?.bytes;
  }

  /** The token is the object's generation: the version whose size was checked and bytes read. */
  async getVersioned(name: string, options: GetOptions = {}): Promise<VersionedObject | undefined> {
    const found = await this.#read(name, options);
    if (!found) return undefined;
    if (found.generation === undefined) {
      throw this.#error(new Error('the object metadata carries no generation'), `read ${name}`);
    }
    return { bytes: found.bytes, token: String(found.generation) };
  }

  async #read(
    name: string,
    options: GetOptions,
  ): Promise<{ bytes: Buffer; generation: string | number | undefined } | undefined> {
    const key = this.#o.prefix + checkObjectName(name);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const signal = deadline(this.#o.timeoutMs, options.signal);
    let size: number;
    let generation: string | number | undefined;
    try {
      const [md] = await bounded(this.#o.bucket.file(key).getMetadata(), signal);
      size = Number(md.size);
      generation = md.generation;
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw this.#error(err, `read ${name}`);
    }
    // The announced size decides before any byte is downloaded.
    if (size > maxBytes) throw tooLarge(this.url, name, size, maxBytes);
    // Download the generation whose size was checked, not whatever is there now.
    const file = this.#o.bucket.file(key, generation === undefined ? {} : { generation: Number(generation) });
    const stream: Readable = file.createReadStream({ validation: false, decompress: false });
    try {
      const bytes = await readCapped(
        stream,
        { storeUrl: this.url, name, maxBytes, expectedLength: size, signal, idleMs: this.#o.idleMs },
        () => stream.destroy(),
      );
      return { bytes, generation };
    } catch (err) {
      const cause = err instanceof StorageError ? err.cause : err;
      if (status(cause) === 404) return undefined;
      if (status(cause) !== undefined) throw this.#error(cause, `read ${name}`);
      throw err;
    }
  }

  async put(name: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    const key = this.#o.prefix + checkObjectName(name);
    const signal = deadline(this.#o.timeoutMs, options.signal);
    try {
      await bounded(
        this.#o.bucket.file(key).save(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
          resumable: false,
          validation: 'md5',
          metadata: { contentType: 'application/octet-stream' },
          timeout: this.#o.timeoutMs,
          // ifGenerationMatch=0: create-only, decided by GCS atomically.
          ...(options.ifAbsent ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
        }),
        signal,
      );
      return 'created';
    } catch (err) {
      if (options.ifAbsent && status(err) === 412) return compareExisting(this, name, bytes);
      throw this.#error(err, `write ${name}`);
    }
  }

  /**
   * ifGenerationMatch: the generation read, or 0 (no live object) for a create; GCS decides
   * atomically and answers 412 otherwise.
   */
  async swap(name: string, bytes: Uint8Array, expected: string | null, options: SwapOptions = {}): Promise<string> {
    const key = this.#o.prefix + checkObjectName(name);
    // A token that is not a generation names no version of this object: it cannot match.
    if (expected !== null && !/^[1-9][0-9]{0,19}$/.test(expected)) throw swapConflict(this.url, name, expected);
    const signal = deadline(this.#o.timeoutMs, options.signal);
    const file = this.#o.bucket.file(key);
    try {
      await bounded(
        file.save(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
          resumable: false,
          validation: 'md5',
          metadata: { contentType: 'application/octet-stream' },
          timeout: this.#o.timeoutMs,
          preconditionOpts: { ifGenerationMatch: expected === null ? 0 : Number(expected) },
        }),
        signal,
      );
    } catch (err) {
      if (status(err) === 412) throw swapConflict(this.url, name, expected);
      throw this.#error(err, `write ${name}`);
    }
    // The upload's response is the new object's resource, generation included.
    const generation = file.metadata.generation;
    if (generation === undefined || generation === null || generation === '') {
      throw this.#error(new Error('the upload response carries no generation'), `write ${name}`);
    }
    return String(generation);
  }

  async list(prefix = '', options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const signal = deadline(this.#o.timeoutMs * DEFAULT_ATTEMPTS, options.signal);
    try {
      const [files] = await bounded(this.#o.bucket.getFiles({ prefix: this.#o.prefix + prefix, autoPaginate: true }), signal);
      return files.map((f) => f.name.slice(this.#o.prefix.length)).sort();
    } catch (err) {
      throw this.#error(err, `list ${prefix}`);
    }
  }

  #error(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) return err;
    const code = status(err);
    if (code === 401 || code === 403) return denied(this.url, code, what);
    if (code === undefined && isNetworkFailure(err)) return unreachable(this.url, err, this.#o.timeoutMs);
    if (code === 404) return requestFailed(this.url, what, err, `check that the bucket ${this.#o.bucket.name} exists`);
    return requestFailed(this.url, what, err);
  }
}

function status(err: unknown): number | undefined {
  // HTTP statuses only: a DOMException (a timeout) has a numeric `code` too.
  if (err instanceof DOMException) return undefined;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
}

/** The client's own timeouts cover each request; this bounds the whole call, retries included. */
function bounded<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
