// S3 and S3-compatible stores through the official AWS SDK v3. This module is imported
// only when an s3:// URL is opened, so the SDK never loads for other stores.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { compareExisting, swapConflict } from './conflict.js';
import { StorageError } from './error.js';
import { deadline, readCapped } from './limits.js';
import { checkListPrefix, checkObjectName } from './names.js';
import { denied, isNetworkFailure, requestFailed, unreachable } from './net.js';
import { bucketAndPrefix, type NetworkStoreSettings } from './open.js';
import type { ArtifactStore, GetOptions, ListOptions, PutOptions, PutOutcome, SwapOptions, VersionedObject } from './store.js';
import { DEFAULT_ATTEMPTS, DEFAULT_MAX_BYTES } from './store.js';

export interface S3StoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix, empty or ending in "/". */
  prefix: string;
  url: string;
  timeoutMs: number;
}

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

export class S3Store implements ArtifactStore {
  readonly url: string;
  readonly #o: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    this.#o = options;
    this.url = options.url;
  }

  /**
   * `s3://bucket/prefix[?endpoint=URL][&region=R]`. The endpoint may also come from
   * APX_S3_ENDPOINT (and the SDK itself honours AWS_ENDPOINT_URL_S3); with an endpoint,
   * path-style addressing is used, as MinIO and most S3-compatible stores need.
   * Credentials: the SDK's default chain (env, profile, instance role).
   */
  static create(u: URL, settings: NetworkStoreSettings): S3Store {
    const { bucket, prefix } = bucketAndPrefix(u);
    const endpoint = u.searchParams.get('endpoint') ?? settings.env.APX_S3_ENDPOINT;
    const region = u.searchParams.get('region') ?? settings.env.AWS_REGION ?? settings.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    const config: S3ClientConfig = {
      region,
      maxAttempts: DEFAULT_ATTEMPTS,
      requestHandler: { connectionTimeout: settings.timeoutMs, requestTimeout: settings.timeoutMs },
    };
    if (endpoint) {
      config.endpoint = endpoint;
      config.forcePathStyle = true;
      // S3-compatible stores vary in their support of the newer flexible checksums.
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    return new S3Store({ client: new S3Client(config), bucket, prefix, url: settings.url, timeoutMs: settings.timeoutMs });
  }

  async get(name: string, options: GetOptions = {}): Promise<Buffer | undefined> {
    return (await this.#read(name, options))?.bytes;
  }

  /** The token is the ETag of the very response whose body was read. */
  async getVersioned(name: string, options: GetOptions = {}): Promise<VersionedObject | undefined> {
    const found = await this.#read(name, options);
    if (!found) return undefined;
    if (!found.etag) throw this.#error(new Error('the response carries no ETag'), `read ${name}`);
    return { bytes: found.bytes, token: found.etag };
  }

  async #read(name: string, options: GetOptions): Promise<{ bytes: Buffer; etag: string | undefined } | undefined> {
    const key = this.#o.prefix + checkObjectName(name);
    const signal = deadline(this.#o.timeoutMs, options.signal);
    let res: GetObjectCommandOutput;
    try {
      res = await this.#o.client.send(new GetObjectCommand({ Bucket: this.#o.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      const e = err as SdkError;
      if (e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) {
        if (e.name === 'NoSuchBucket') throw this.#error(err, `read ${name}`);
        return undefined;
      }
      throw this.#error(err, `read ${name}`);
    }
    const body = res.Body as Readable | undefined;
    if (!body) return { bytes: Buffer.alloc(0), etag: res.ETag };
    const bytes = await readCapped(
      body,
      { storeUrl: this.url, name, maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES, expectedLength: res.ContentLength, signal },
      () => body.destroy(),
    );
    return { bytes, etag: res.ETag };
  }

  async put(name: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    const key = this.#o.prefix + checkObjectName(name);
    const signal = deadline(this.#o.timeoutMs, options.signal);
    try {
      await this.#o.client.send(
        new PutObjectCommand({
          Bucket: this.#o.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentMD5: createHash('md5').update(bytes).digest('base64'),
          ContentType: 'application/octet-stream',
          // Conditional create (S3 since 2024, MinIO, R2...): atomic create-only.
          ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
        }),
        { abortSignal: signal },
      );
      return 'created';
    } catch (err) {
      const status = (err as SdkError).$metadata?.httpStatusCode;
      if (options.ifAbsent && (status === 412 || status === 409)) return compareExisting(this, name, bytes);
      throw this.#error(err, `write ${name}`);
    }
  }

  /**
   * A conditional write (S3 since 2024, MinIO, R2): If-Match the ETag read, or
   * If-None-Match: * for a create. S3 answers 412 when the condition fails, 409
   * ConditionalRequestConflict when another write to the key raced this one, and 404 when an
   * If-Match names an object deleted meanwhile: each means another writer got there first.
   */
  async swap(name: string, bytes: Uint8Array, expected: string | null, options: SwapOptions = {}): Promise<string> {
    const key = this.#o.prefix + checkObjectName(name);
    const signal = deadline(this.#o.timeoutMs, options.signal);
    try {
      const res = await this.#o.client.send(
        new PutObjectCommand({
          Bucket: this.#o.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentMD5: createHash('md5').update(bytes).digest('base64'),
          ContentType: 'application/octet-stream',
          ...(expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }),
        }),
        { abortSignal: signal },
      );
      if (!res.ETag) throw new Error('the response carries no ETag');
      return res.ETag;
    } catch (err) {
      const e = err as SdkError;
      const status = e.$metadata?.httpStatusCode;
      if (status === 412 || status === 409 || (expected !== null && status === 404 && e.name !== 'NoSuchBucket')) {
        throw swapConflict(this.url, name, expected);
      }
      throw this.#error(err, `write ${name}`);
    }
  }

  async list(prefix = '', options: ListOptions = {}): Promise<string[]> {
    checkListPrefix(prefix);
    const out: string[] = [];
    let token: string | undefined;
    do {
      const signal = deadline(this.#o.timeoutMs, options.signal);
      try {
        const res = await this.#o.client.send(
          new ListObjectsV2Command({
            Bucket: this.#o.bucket,
            Prefix: this.#o.prefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          { abortSignal: signal },
        );
        for (const o of res.Contents ?? []) if (o.Key) out.push(o.Key.slice(this.#o.prefix.length));
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } catch (err) {
        throw this.#error(err, `list ${prefix}`);
      }
    } while (token);
    return out.sort();
  }

  async close(): Promise<void> {
    this.#o.client.destroy();
  }

  #error(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) return err;
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    if (status === 401 || status === 403) return denied(this.url, status, what);
    if (status === undefined && isNetworkFailure(err)) return unreachable(this.url, err, this.#o.timeoutMs);
    if (e.name === 'NoSuchBucket')
      return requestFailed(this.url, what, err, `create the bucket ${this.#o.bucket} or fix the store URL`);
    // The SDK's credential chain found nothing: no request was made.
    if (e.name === 'CredentialsProviderError') {
      return requestFailed(
        this.url,
        what,
        new Error(
          'no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or use an instance or task role',
        ),
        'the AWS SDK reads the environment, then ~/.aws (AWS_PROFILE), then the instance or task role',
      );
    }
    return requestFailed(this.url, what, err);
  }
}
