import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Keyring } from '@apx/core';
import { keyringOf, type TrustedKeyProvider } from './keys.js';
import type { ArtifactSource } from './source.js';

const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

export interface TrustDocumentOptions<T> {
  /** The object name in the store (`revocations.json`, `index.json`). */
  object: string;
  /** A file path, or `store` for the object (and its .sig) in the artifact store. */
  location: string;
  source: ArtifactSource;
  keys: TrustedKeyProvider;
  cwd: string;
  /** Verifies signature, shape and monotonic version against what is held. */
  verify(text: Buffer, signature: Buffer, keyring: Keyring, held: T | undefined, where: string): T;
  version(document: T): number;
  /** A newer document verified: apply it. */
  onApplied(document: T): void;
  /** A document refused (unsigned, badly signed, malformed, older than the one held). */
  onRejected(error: unknown): void;
}

/**
 * Polls a signed trust document (revocation list, policy index). Only a document signed by
 * an active key of the keyring and not older than the one held replaces it; anything else
 * is reported and the held one stays in force, so a bad or replayed copy changes nothing.
 */
export class TrustDocumentWatcher<T> {
  private held: T | undefined;
  private readonly options: TrustDocumentOptions<T>;

  constructor(options: TrustDocumentOptions<T>) {
    this.options = options;
  }

  get current(): T | undefined {
    return this.held;
  }

  get where(): string {
    const { location, source, object } = this.options;
    return location === 'store' ? `${source.url}/${object}` : location;
  }

  private async read(signature: boolean): Promise<Buffer | undefined> {
    const { location, source, cwd, object } = this.options;
    if (location === 'store') return source.getObject(signature ? `${object}.sig` : object, MAX_DOCUMENT_BYTES);
    return readFile(resolve(cwd, signature ? `${location}.sig` : location)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  }

  async refresh(): Promise<void> {
    try {
      const text = await this.read(false);
      if (!text) return; // nothing published yet
      const signature = await this.read(true);
      if (!signature) throw new Error(`${this.where}: its signature (.sig) is missing`);
      const doc = this.options.verify(text, signature, await keyringOf(this.options.keys), this.held, this.where);
      if (this.held !== undefined && this.options.version(doc) === this.options.version(this.held)) return;
      this.held = doc;
      this.options.onApplied(doc);
    } catch (err) {
      this.options.onRejected(err);
    }
  }
}
