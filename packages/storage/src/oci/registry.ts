// A small OCI distribution-spec client over Node's fetch: just the calls APX needs.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { StorageError, StorageErrorCode } from '../error.js';
import { deadline, readCapped } from '../limits.js';
import { denied, isNetworkFailure, requestFailed, unreachable } from '../net.js';
import { DEFAULT_ATTEMPTS } from '../store.js';
import { type Descriptor, type Manifest, OCI_MANIFEST } from './mapping.js';

/** Manifests are small; a larger one is refused before parsing. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Redirects followed for one GET or HEAD (blob downloads are often redirected to a CDN). */
const MAX_REDIRECTS = 5;

/** True for `localhost` and loopback addresses (127.0.0.0/8, ::1): traffic that never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host) || /^::ffff:7f/.test(host);
  return false;
}

/**
 * Whether a secret (Basic credentials, a bearer token) may be sent to `target`: over https,
 * or over plain http only to the registry's own origin when that is a loopback address
 * (`oci+http://127.0.0.1:5000`, a registry on the same machine). A token service on another
 * host or port over plain http never receives them.
 */
export function mayReceiveCredentials(target: URL, registry: URL): boolean {
  if (target.protocol === 'https:') return true;
  return target.protocol === 'http:' && target.origin === registry.origin && isLoopbackHost(target.hostname);
}

export interface RegistryAuth {
  username?: string;
  password?: string;
  /** A static bearer token (e.g. a registry PAT already exchanged). */
  token?: string;
}

export interface RegistryClientOptions {
  /** `https://host:port` or `http://host:port`. */
  base: string;
  /** The store URL for messages. */
  storeUrl: string;
  timeoutMs: number;
  auth: RegistryAuth;
}

interface RequestInit2 {
  headers?: Record<string, string>;
  body?: Uint8Array;
  signal?: AbortSignal | undefined;
}

export class RegistryClient {
  readonly #o: RegistryClientOptions;
  /** Bearer tokens from the registry's token service, by scope. */
  readonly #tokens = new Map<string, string>();
  readonly #registry: URL;

  constructor(options: RegistryClientOptions) {
    this.#o = options;
    this.#registry = new URL(options.base);
  }

  get storeUrl(): string {
    return this.#o.storeUrl;
  }

  /**
   * One request with a timeout; GET and HEAD (idempotent) are retried on network errors,
   * 429 and 5xx, a bounded number of times. A 401 with a Bearer challenge is answered
   * once through the registry's token service.
   */
  async request(method: string, path: string, scope: string, init: RequestInit2 = {}): Promise<Response> {
    const idempotent = method === 'GET' || method === 'HEAD';
    const attempts = idempotent ? DEFAULT_ATTEMPTS : 1;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        let res = await this.#send(method, path, scope, init);
        if (res.status === 401) {
          const challenge = res.headers.get('www-authenticate') ?? '';
          await res.body?.cancel();
          if (/^bearer /i.test(challenge) && !this.#o.auth.token && (await this.#fetchToken(challenge, scope, init.signal))) {
            res = await this.#send(method, path, scope, init);
          } else {
            throw denied(this.#o.storeUrl, 401, `${method} ${path}`);
          }
        }
        if (idempotent && attempt < attempts && (res.status === 429 || res.status >= 500)) {
          await res.body?.cancel();
          lastError = new Error(`HTTP ${res.status}`);
          await pause(200 * attempt, init.signal);
          continue;
        }
        return res;
      } catch (err) {
        if (err instanceof StorageError) throw err;
        if (init.signal?.aborted && init.signal.reason?.name !== 'TimeoutError') throw init.signal.reason;
        if (!isNetworkFailure(err)) throw requestFailed(this.#o.storeUrl, `${method} ${path}`, err);
        lastError = err;
        const timedOut = (err as { name?: string }).name === 'TimeoutError';
        if (timedOut || attempt === attempts) break;
        await pause(200 * attempt, init.signal);
      }
    }
    if (isNetworkFailure(lastError)) throw unreachable(this.#o.storeUrl, lastError, this.#o.timeoutMs);
    throw requestFailed(this.#o.storeUrl, `${method} ${path}`, lastError);
  }

  /**
   * Redirects are followed here, not by fetch: the Authorization header goes only to the
   * registry's own origin (and only where mayReceiveCredentials allows), never along a
   * redirect to another host, such as a CDN serving blobs. Only GET and HEAD follow redirects.
   */
  async #send(method: string, path: string, scope: string, init: RequestInit2): Promise<Response> {
    const signal = deadline(this.#o.timeoutMs, init.signal);
    let target = new URL(`${this.#o.base}${path}`);
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...init.headers };
      const auth = target.origin === this.#registry.origin ? this.#authorization(scope) : undefined;
      // An anonymous registry token is no secret of ours; configured credentials (and tokens
      // got with them) go only where mayReceiveCredentials allows.
      if (auth && (!this.#hasCredentials() || mayReceiveCredentials(target, this.#registry))) headers.authorization = auth;
      const res = await fetch(target, {
        method,
        headers,
        ...(init.body ? { body: init.body } : {}),
        signal,
        redirect: 'manual',
      });
      const next = redirectTarget(res, target);
      if (next === undefined || (method !== 'GET' && method !== 'HEAD') || hop >= MAX_REDIRECTS) return res;
      await res.body?.cancel();
      target = next;
    }
  }

  #hasCredentials(): boolean {
    const { username, password, token } = this.#o.auth;
    return token !== undefined || (username !== undefined && password !== undefined);
  }

  #authorization(scope: string): string | undefined {
    const { username, password, token } = this.#o.auth;
    if (token) return `Bearer ${token}`;
    const exchanged = this.#tokens.get(scope);
    if (exchanged) return `Bearer ${exchanged}`;
    if (username !== undefined && password !== undefined)
      return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    return undefined;
  }

  /**
   * distribution's token authentication: GET realm?service=&scope=, with the Basic
   * credentials when some are set. They go only to a realm over https, or to the registry's
   * own loopback origin over http (mayReceiveCredentials); a realm elsewhere over plain http is
   * refused (DENIED) without being contacted. Without credentials an anonymous token is asked
   * for, from any realm.
   */
  async #fetchToken(challenge: string, scope: string, signal: AbortSignal | undefined): Promise<boolean> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!params.realm) return false;
    let u: URL;
    try {
      u = new URL(params.realm);
    } catch {
      return false;
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return false;
    u.username = '';
    u.password = '';
    if (params.service) u.searchParams.set('service', params.service);
    u.searchParams.set('scope', scope);
    const { username, password } = this.#o.auth;
    const basic =
      username !== undefined && password !== undefined
        ? `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
        : undefined;
    if (basic && !mayReceiveCredentials(u, this.#registry)) {
      throw new StorageError(
        StorageErrorCode.DENIED,
        `store ${this.#o.storeUrl}: the registry's token service ${u.origin} is plain http on another host; registry credentials are sent only over https`,
        {
          hint: 'configure the registry to name an https token realm (or use a registry on this machine with oci+http://127.0.0.1); check that the store URL names the registry you mean',
        },
      );
    }
    const timed = deadline(this.#o.timeoutMs, signal);
    const realm = u.origin;
    try {
      let res: Response;
      for (let hop = 0; ; hop++) {
        // The credentials go to the realm's own origin only, not along a redirect elsewhere.
        const headers: Record<string, string> = basic && u.origin === realm ? { authorization: basic } : {};
        res = await fetch(u, { headers, signal: timed, redirect: 'manual' });
        const next = redirectTarget(res, u);
        if (next === undefined || hop >= MAX_REDIRECTS) break;
        await res.body?.cancel();
        u = next;
      }
      if (!res.ok) {
        await res.body?.cancel();
        return false;
      }
      const body = (await res.json()) as { token?: string; access_token?: string };
      const token = body.token ?? body.access_token;
      if (!token) return false;
      this.#tokens.set(scope, token);
      return true;
    } catch (err) {
      if (isNetworkFailure(err)) throw unreachable(realm, err, this.#o.timeoutMs);
      return false;
    }
  }

  async getManifest(
    repository: string,
    reference: string,
    signal?: AbortSignal,
  ): Promise<{ manifest: Manifest; digest: string; raw: Buffer } | undefined> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.request('GET', path, pullScope(repository), { headers: { accept: OCI_MANIFEST }, signal });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    await this.#expect(res, 200, `GET ${path}`);
    const raw = await this.#body(res, `manifest ${repository}:${reference}`, MAX_MANIFEST_BYTES, signal);
    const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    let manifest: Manifest;
    try {
      manifest = JSON.parse(raw.toString('utf8')) as Manifest;
    } catch (err) {
      throw requestFailed(this.#o.storeUrl, `parse manifest ${repository}:${reference}`, err);
    }
    if (manifest.schemaVersion !== 2 || !Array.isArray(manifest.layers)) {
      throw requestFailed(this.#o.storeUrl, `read manifest ${repository}:${reference}`, new Error('not an OCI image manifest'));
    }
    return { manifest, digest, raw };
  }

  async putManifest(repository: string, tag: string, raw: Buffer, signal?: AbortSignal): Promise<void> {
    const path = `/v2/${repository}/manifests/${tag}`;
    const res = await this.request('PUT', path, pushScope(repository), {
      headers: { 'content-type': OCI_MANIFEST },
      body: raw,
      signal,
    });
    await this.#expect(res, 201, `PUT ${path}`);
    await res.body?.cancel();
  }

  /** Uploads a blob unless the registry has it: HEAD, then POST + monolithic PUT ?digest=. */
  async pushBlob(repository: string, bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const head = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, pushScope(repository), { signal });
    await head.body?.cancel();
    if (head.status === 200) return digest;
    const start = await this.request('POST', `/v2/${repository}/blobs/uploads/`, pushScope(repository), { signal });
    await this.#expect(start, 202, `POST /v2/${repository}/blobs/uploads/`);
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (!location) throw requestFailed(this.#o.storeUrl, 'start blob upload', new Error('no Location header'));
    const target = new URL(location, this.#o.base);
    target.searchParams.set('digest', digest);
    const path = `${target.pathname}${target.search}`;
    if (target.origin !== new URL(this.#o.base).origin) {
      throw requestFailed(this.#o.storeUrl, 'blob upload', new Error(`upload redirected to another origin: ${target.origin}`));
    }
    const put = await this.request('PUT', path, pushScope(repository), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.byteLength) },
      body: bytes,
      signal,
    });
    await this.#expect(put, 201, `PUT blob ${digest}`);
    await put.body?.cancel();
    return digest;
  }

  /** Downloads a blob, capped by the descriptor's size, and checks its digest. */
  async getBlob(repository: string, d: Descriptor, name: string, signal?: AbortSignal): Promise<Buffer> {
    const path = `/v2/${repository}/blobs/${d.digest}`;
    const res = await this.request('GET', path, pullScope(repository), { signal });
    await this.#expect(res, 200, `GET ${path}`);
    const bytes = await this.#body(res, name, d.size, signal, d.size);
    const [alg, hex] = d.digest.split(':');
    const actual = alg === 'sha256' || alg === 'sha512' ? createHash(alg).update(bytes).digest('hex') : undefined;
    if (actual !== hex) {
      throw new StorageError(
        StorageErrorCode.INTEGRITY,
        `blob ${d.digest} of ${name} from ${this.#o.storeUrl} does not match its digest`,
        {
          hint: 'the registry returned other bytes than the manifest names: a corrupted store or a tampering proxy; investigate before retrying',
        },
      );
    }
    return bytes;
  }

  async listTags(repository: string, signal?: AbortSignal): Promise<string[]> {
    return this.#paged(`/v2/${repository}/tags/list?n=1000`, pullScope(repository), 'tags', signal);
  }

  async catalog(signal?: AbortSignal): Promise<string[]> {
    return this.#paged('/v2/_catalog?n=1000', 'registry:catalog:*', 'repositories', signal);
  }

  async #paged(first: string, scope: string, key: 'tags' | 'repositories', signal?: AbortSignal): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = first;
    for (let page = 0; path && page < 1000; page++) {
      const res = await this.request('GET', path, scope, { headers: { accept: 'application/json' }, signal });
      if (res.status === 404) {
        await res.body?.cancel();
        return out;
      }
      await this.#expect(res, 200, `GET ${path}`);
      const body = JSON.parse((await this.#body(res, path, MAX_MANIFEST_BYTES, signal)).toString('utf8')) as Record<
        string,
        unknown
      >;
      const items = body[key];
      if (Array.isArray(items)) out.push(...items.filter((t): t is string => typeof t === 'string'));
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(res.headers.get('link') ?? '')?.[1];
      path = link ? `${new URL(link, this.#o.base).pathname}${new URL(link, this.#o.base).search}` : undefined;
    }
    return out;
  }

  async #body(
    res: Response,
    name: string,
    maxBytes: number,
    signal: AbortSignal | undefined,
    expected?: number,
  ): Promise<Buffer> {
    const header = res.headers.get('content-length');
    const announced = header === null ? expected : Number(header);
    if (!res.body) return Buffer.alloc(0);
    const body = res.body;
    return readCapped(
      body as unknown as AsyncIterable<Uint8Array>,
      { storeUrl: this.#o.storeUrl, name, maxBytes, expectedLength: announced, signal, idleMs: this.#o.timeoutMs },
      () => {
        body.cancel().catch(() => undefined);
      },
    );
  }

  async #expect(res: Response, status: number, what: string): Promise<void> {
    if (res.status === status || (status === 200 && res.status === 200)) return;
    let detail = `HTTP ${res.status}`;
    try {
      const text = (await res.text()).slice(0, 2000);
      const errors = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors;
      if (errors?.length) detail += `: ${errors.map((e) => `${e.code ?? ''} ${e.message ?? ''}`.trim()).join('; ')}`;
    } catch {
      // not JSON: the status says enough
    }
    if (res.status === 401 || res.status === 403) throw denied(this.#o.storeUrl, res.status, what);
    throw requestFailed(this.#o.storeUrl, what, new Error(detail));
  }
}

/** The URL a 3xx answer points at, or undefined for any other answer. */
function redirectTarget(res: Response, from: URL): URL | undefined {
  if (![301, 302, 303, 307, 308].includes(res.status)) return undefined;
  const location = res.headers.get('location');
  if (!location) return undefined;
  try {
    const next = new URL(location, from);
    return next.protocol === 'https:' || next.protocol === 'http:' ? next : undefined;
  } catch {
    return undefined;
  }
}

const pullScope = (repository: string) => `repository:${repository}:pull`;
const pushScope = (repository: string) => `repository:${repository}:pull,push`;

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
