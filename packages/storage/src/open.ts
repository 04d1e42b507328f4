import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageError, StorageErrorCode } from './error.js';
import { LocalStore } from './local.js';
import type { ArtifactStore } from './store.js';
import { DEFAULT_TIMEOUT_MS } from './store.js';

/** The embedded default store: a directory beside the caller. */
export const DEFAULT_STORE_URL = './artifacts';

export interface OpenStoreOptions {
  /** Resolves relative directory paths (default: process.cwd()). */
  cwd?: string;
  /**
   * Environment for endpoint overrides and registry credentials. Passed in, never read
   * here: only composition roots (cli, worker) read process.env.
   */
  env?: Record<string, string | undefined>;
  /** Timeout of each network call in ms (default 10 s). */
  timeoutMs?: number;
}

/** Resolved settings a network backend needs; exported for the backends and tests. */
export interface NetworkStoreSettings {
  url: string;
  timeoutMs: number;
  env: Record<string, string | undefined>;
}

/**
 * Opens the store a URL names:
 *   ./artifacts, /abs/dir, file:///abs/dir      a local directory
 *   gs://bucket[/prefix][?endpoint=URL]           Google Cloud Storage (@google-cloud/storage 7)
 *   s3://bucket[/prefix][?endpoint=URL&region=R]  S3 or S3-compatible (@aws-sdk/client-s3)
 *   oci://host[:port]/repository-prefix           OCI registry over https
 *   oci+http://host[:port]/repository-prefix      OCI registry over plain http (explicit)
 * The cloud SDKs are imported only when their scheme is used.
 */
export async function openStore(url: string = DEFAULT_STORE_URL, options: OpenStoreOptions = {}): Promise<ArtifactStore> {
  const env = options.env ?? {};
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (url === '') throw invalidUrl(url, 'the store URL is empty');
    const root = isAbsolute(url) ? url : resolve(options.cwd ?? process.cwd(), url);
    return new LocalStore({ root, url });
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidUrl(url, 'not a URL');
  }
  if (parsed.username || parsed.password) {
    throw invalidUrl(redact(parsed), 'credentials in the store URL are refused (URLs end up in logs)', credentialHint(scheme));
  }
  switch (scheme) {
    case 'file': {
      if (parsed.host !== '' && parsed.host !== 'localhost') throw invalidUrl(url, 'file URLs must be local (file:///dir)');
      return new LocalStore({ root: fileURLToPath(parsed), url });
    }
    case 'gs': {
      const { GcsStore } = await loadBackend(() => import('./gcs.js'), '@google-cloud/storage@7', url);
      return GcsStore.create(parsed, { url, timeoutMs, env });
    }
    case 's3': {
      const { S3Store } = await loadBackend(() => import('./s3.js'), '@aws-sdk/client-s3@3', url);
      return S3Store.create(parsed, { url, timeoutMs, env });
    }
    case 'oci':
    case 'oci+http': {
      const { OciStore } = await import('./oci/oci-store.js');
      return OciStore.create(parsed, { url, timeoutMs, env });
    }
    default:
      throw invalidUrl(url, `unsupported scheme ${scheme}://`);
  }
}

/** The SDK is an optional peer: a missing one is a clear error, not a stack trace. */
async function loadBackend<T>(load: () => Promise<T>, sdk: string, url: string): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new StorageError(StorageErrorCode.BACKEND_UNAVAILABLE, `store ${url} needs ${sdk}, which is not installed`, {
        hint: `npm install ${sdk}`,
        cause: err,
      });
    }
    throw err;
  }
}

export function invalidUrl(url: string, why: string, hint?: string): StorageError {
  return new StorageError(StorageErrorCode.INVALID_URL, `invalid store URL ${url}: ${why}`, {
    hint:
      hint ??
      'use a directory (./artifacts), file:///dir, gs://bucket/prefix, s3://bucket/prefix[?endpoint=URL], oci://host/repo or oci+http://127.0.0.1:5000/repo',
  });
}

function redact(u: URL): string {
  const copy = new URL(u.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

function credentialHint(scheme: string): string {
  if (scheme.startsWith('oci')) return 'set APX_OCI_USERNAME and APX_OCI_PASSWORD (or APX_OCI_TOKEN) instead';
  if (scheme === 's3') return 'use the AWS credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance roles) instead';
  return 'use the provider credential chain (GOOGLE_APPLICATION_CREDENTIALS, workload identity) instead';
}

/** The store's bucket and object prefix from `scheme://bucket/prefix`. */
export function bucketAndPrefix(u: URL): { bucket: string; prefix: string } {
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket))
    throw invalidUrl(u.href, `invalid bucket name ${JSON.stringify(bucket)}`);
  const path = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  if (path.split('/').some((s) => s === '..' || s === '.')) throw invalidUrl(u.href, 'the prefix may not contain . or ..');
  return { bucket, prefix: path === '' ? '' : `${path}/` };
}
