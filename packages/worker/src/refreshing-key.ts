import type { SignatureVerifier } from '@apx/core';
import { WorkerError } from './error.js';
import type { TrustedKeyProvider } from './keys.js';

/** The key now trusted, for logs: where it came from and its key id (never the key bytes). */
export interface TrustedKeyInfo {
  /** The reference configured (`.../versions/latest`, `gcpkms://...`). */
  ref: string;
  /** The version actually read (`.../versions/3`, `.../cryptoKeyVersions/2`), as the provider names it. */
  version: string;
  /** Lowercase hex SHA-256 of the key's SPKI DER. */
  keyId: string;
}

/** How a key read from a remote service (Secret Manager, a KMS) is kept fresh. */
export interface RefreshingKeyOptions {
  /** Re-read the key when it is older than this (rotation without restart). Default 5 minutes. */
  refreshIntervalMs?: number;
  /** After a failed refresh, keep the last good key and try again after this. Default min(30 s, refresh interval). */
  retryIntervalMs?: number;
  /** The clock (tests inject one). Default Date.now. */
  now?: () => number;
  /** A refresh failed and the last good key is kept; the worker logs it. Never called when there is no key yet (that throws). */
  onRefreshError?: (error: WorkerError, kept: TrustedKeyInfo) => void;
  /** A key was read whose key id differs from the previous one (the first load included). */
  onKeyLoaded?: (key: TrustedKeyInfo, previous: TrustedKeyInfo | undefined) => void;
}

export const DEFAULT_KEY_REFRESH_MS = 5 * 60_000;
const DEFAULT_RETRY_MS = 30_000;

/**
 * A trusted key read from a remote service. The verifier is cached and the key re-read when
 * older than the refresh interval, so rotating it at the source needs no restart; a failed
 * refresh keeps the last good key and is reported to `onRefreshError`; with no key yet, the
 * failure is thrown. Concurrent callers share one read.
 */
export abstract class RefreshingKeyProvider implements TrustedKeyProvider {
  readonly description: string;
  protected readonly ref: string;
  private readonly refreshMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly hooks: RefreshingKeyOptions;
  private current: { verifier: SignatureVerifier; info: TrustedKeyInfo } | undefined;
  private nextReadAt = 0;
  private inflight: Promise<SignatureVerifier> | undefined;

  protected constructor(ref: string, options: RefreshingKeyOptions) {
    this.ref = ref;
    this.description = ref;
    this.hooks = options;
    this.refreshMs = options.refreshIntervalMs ?? DEFAULT_KEY_REFRESH_MS;
    this.retryMs = options.retryIntervalMs ?? Math.min(DEFAULT_RETRY_MS, this.refreshMs);
    this.now = options.now ?? Date.now;
  }

  /** Reads the key once; failures are WorkerErrors or are turned into one by `failure`. */
  protected abstract read(): Promise<{ verifier: SignatureVerifier; info: TrustedKeyInfo }>;
  /** The one-line error for a read that threw something else than a WorkerError. */
  protected abstract failure(err: unknown): WorkerError;

  /** The key in use, if one was read (for logs and readiness). */
  get key(): TrustedKeyInfo | undefined {
    return this.current?.info;
  }

  async verifier(): Promise<SignatureVerifier> {
    if (this.current && this.now() < this.nextReadAt) return this.current.verifier;
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async refresh(): Promise<SignatureVerifier> {
    try {
      const loaded = await this.read();
      const previous = this.current?.info;
      this.current = loaded;
      this.nextReadAt = this.now() + this.refreshMs;
      if (previous?.keyId !== loaded.info.keyId) this.report(() => this.hooks.onKeyLoaded?.(loaded.info, previous));
      return loaded.verifier;
    } catch (err) {
      const error = err instanceof WorkerError ? err : this.failure(err);
      const kept = this.current;
      if (!kept) throw error;
      this.nextReadAt = this.now() + this.retryMs;
      this.report(() => this.hooks.onRefreshError?.(error, kept.info));
      return kept.verifier;
    }
  }

  /** A hook that throws must not take the key away. */
  private report(hook: () => void): void {
    try {
      hook();
    } catch {
      // ignored on purpose
    }
  }
}
