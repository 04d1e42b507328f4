import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageError, StorageErrorCode } from './error.js';
import { LocalStore } from './local.js';
import { PLAIN_NAME, redactStoreUrl } from './redact.js';
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
  // The URL as every message and log shows it; for a URL that is accepted, the URL itself.
  const display = redactStoreUrl(url);
  if (!SCHEMES.includes(scheme)) throw invalidUrl(display, `unsupported scheme ${scheme}://`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // A password holding `/`, `?` or `#` makes a URL unparsable: say what is wrong with it.
    if (url.includes('@')) throw credentialsRefused(display, scheme, 'not a URL; and credentials in the store URL are refused');
    throw invalidUrl(display, 'not a URL');
  }
  checkNoSecrets(parsed, scheme, display, env);
  switch (scheme) {
    case 'file': {
      if (parsed.host !== '' && parsed.host !== 'localhost') throw invalidUrl(display, 'file URLs must be local (file:///dir)');
      return new LocalStore({ root: fileURLToPath(parsed), url: display });
    }
    case 'gs': {
      const { GcsStore } = await loadBackend(() => import('./gcs.js'), '@google-cloud/storage@7', display);
      return GcsStore.create(parsed, { url: display, timeoutMs, env });
    }
    case 's3': {
      const { S3Store } = await loadBackend(() => import('./s3.js'), '@aws-sdk/client-s3@3', display);
      return S3Store.create(parsed, { url: display, timeoutMs, env });
    }
    default: {
      const { OciStore } = await import('./oci/oci-store.js');
      return OciStore.create(parsed, { url: display, timeoutMs, env });
    }
  }
}

const SCHEMES = ['file', 'gs', 's3', 'oci', 'oci+http'];

/** The query parameters each scheme takes (any other is refused). None may hold a secret. */
const PARAMETERS: Record<string, readonly string[]> = { gs: ['endpoint', 'project'], s3: ['endpoint', 'region'] };

/** The environment variables that may name an endpoint instead of `?endpoint=`. */
const ENDPOINT_VARIABLES: Record<string, string> = { gs: 'APX_GCS_ENDPOINT', s3: 'APX_S3_ENDPOINT' };

/** Parameter names that say "credential" (AWS and GCS signed URLs, SAS tokens, API keys...). */
const CREDENTIAL_NAME = /key|secret|token|passw|pwd|auth|cred|sig|session|security|access|bearer|jwt/i;

/**
 * A store URL is shown in logs, messages and the worker's unauthenticated API, so it may not
 * hold a credential: userinfo, a parameter other than the scheme's own, an endpoint with
 * userinfo or a query, and a fragment are refused, by a message that shows the URL redacted
 * and names the environment variables to use instead. Endpoints from the environment
 * (APX_S3_ENDPOINT, APX_GCS_ENDPOINT) are held to the same rules: error messages show them.
 */
function checkNoSecrets(u: URL, scheme: string, display: string, env: Record<string, string | undefined>): void {
  if (u.username || u.password) throw credentialsRefused(display, scheme, 'credentials in the store URL are refused');
  if (u.hash) throw invalidUrl(display, 'a store URL takes no fragment (#...)');
  const allowed = PARAMETERS[scheme] ?? [];
  for (const item of u.search.slice(1).split('&')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    // Not name=value: perhaps a bare token; never echoed.
    if (eq === -1) throw credentialsRefused(display, scheme, 'the query holds something other than name=value parameters');
    let name: string;
    try {
      name = decodeURIComponent(item.slice(0, eq).replace(/\+/g, ' '));
    } catch {
      throw invalidUrl(display, 'a query parameter name is not valid percent-encoding');
    }
    if (allowed.includes(name)) continue;
    if (CREDENTIAL_NAME.test(name) || !PLAIN_NAME.test(name)) {
      throw credentialsRefused(display, scheme, 'credentials in store URL parameters are refused');
    }
    throw invalidUrl(
      display,
      allowed.length > 0
        ? `unknown parameter ${name} (${scheme}:// takes ${allowed.join(' and ')})`
        : `${scheme}:// URLs take no query parameters`,
    );
  }
  const variable = ENDPOINT_VARIABLES[scheme];
  const endpoint = u.searchParams.get('endpoint');
  if (endpoint !== null) checkEndpoint(endpoint, 'the endpoint parameter', scheme, display);
  else if (variable !== undefined && env[variable]) checkEndpoint(env[variable], variable, scheme, display);
}

/** An endpoint is `http(s)://host[:port][/path]` (or a bare host[:port], as the SDKs take it): nothing else. */
function checkEndpoint(value: string, where: string, scheme: string, display: string): void {
  const asUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`;
  let e: URL;
  try {
    e = new URL(asUrl);
  } catch {
    if (value.includes('@')) throw credentialsRefused(display, scheme, `credentials in ${where} are refused`);
    throw invalidUrl(display, `${where} is not a URL (use http://host:port or https://host)`);
  }
  if (e.username || e.password) throw credentialsRefused(display, scheme, `credentials in ${where} are refused`);
  if (e.protocol !== 'http:' && e.protocol !== 'https:') throw invalidUrl(display, `${where} must be an http:// or https:// URL`);
  if (e.search || e.hash) {
    throw credentialsRefused(display, scheme, `${where} takes no query or fragment (signatures and tokens in URLs are refused)`);
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

/** INVALID_URL for `url`, which must already be the redacted display form (redactStoreUrl). */
export function invalidUrl(url: string, why: string, hint?: string): StorageError {
  return new StorageError(StorageErrorCode.INVALID_URL, `invalid store URL ${url}: ${why}`, {
    hint:
      hint ??
      'use a directory (./artifacts), file:///dir, gs://bucket/prefix, s3://bucket/prefix[?endpoint=URL], oci://host/repo or oci+http://127.0.0.1:5000/repo',
  });
}

function credentialsRefused(display: string, scheme: string, why: string): StorageError {
  return invalidUrl(display, `${why} (store URLs appear in logs, messages and the worker's API)`, credentialHint(scheme));
}

/** Where each backend takes its credentials from instead. */
export function credentialHint(scheme: string): string {
  if (scheme.startsWith('oci')) return 'set APX_OCI_USERNAME and APX_OCI_PASSWORD (or APX_OCI_TOKEN) instead';
  if (scheme === 's3') {
    return 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or use an instance or task role) instead';
  }
  if (scheme === 'gs') return 'set GOOGLE_APPLICATION_CREDENTIALS (or use workload identity or a service account) instead';
  return 'a directory store takes no credentials: use file:///dir or a path';
}

/** The store's bucket and object prefix from `scheme://bucket/prefix`. */
export function bucketAndPrefix(u: URL): { bucket: string; prefix: string } {
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket))
    throw invalidUrl(redactStoreUrl(u.href), `invalid bucket name ${JSON.stringify(bucket)}`);
  const path = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  if (path.split('/').some((s) => s === '..' || s === '.'))
    throw invalidUrl(redactStoreUrl(u.href), 'the prefix may not contain . or ..');
  return { bucket, prefix: path === '' ? '' : `${path}/` };
}
