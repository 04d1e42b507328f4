import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { RevocationList } from '@apx/core';
import { keyringOf, type TrustedKeyProvider } from './keys.js';
import type { ArtifactSource } from './source.js';

export const REVOCATIONS_OBJECT = 'revocations.json';
const MAX_LIST_BYTES = 4 * 1024 * 1024;

export interface RevocationWatcherOptions {
  /** A file path, or `store` for revocations.json (and .sig) in the artifact store. */
  location: string;
  source: ArtifactSource;
  keys: TrustedKeyProvider;
  cwd: string;
  /** A newer list verified: apply it (unload what it revokes). */
  onApplied(list: RevocationList): void;
  /** A list that was refused (unsigned, badly signed, malformed, older than the one held). */
  onRejected(error: unknown): void;
}

/**
 * Polls the signed revocation list. Only a list signed by an active key of the keyring and
 * not older than the one held replaces it; anything else is reported and the held list
 * stays in force (fail closed: revocations are never lost to a bad or replayed list).
 */
export class RevocationWatcher {
  private held = RevocationList.empty();
  private readonly options: RevocationWatcherOptions;

  constructor(options: RevocationWatcherOptions) {
    this.options = options;
  }

  get list(): RevocationList {
    return this.held;
  }

  private async read(name: string): Promise<Buffer | undefined> {
    const { location, source, cwd } = this.options;
    if (location === 'store') return source.getObject(name, MAX_LIST_BYTES);
    const path = resolve(cwd, name === REVOCATIONS_OBJECT ? location : `${location}.sig`);
    return readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  }

  async refresh(): Promise<void> {
    const where = this.options.location === 'store' ? `${this.options.source.url}/${REVOCATIONS_OBJECT}` : this.options.location;
    try {
      const text = await this.read(REVOCATIONS_OBJECT);
      if (!text) return; // nothing revoked yet
      const signature = await this.read(`${REVOCATIONS_OBJECT}.sig`);
      if (!signature) throw new Error(`invalid revocation list ${where}: its signature (.sig) is missing`);
      const list = RevocationList.verify(text, signature, await keyringOf(this.options.keys), this.held, where);
      if (list.version === this.held.version) return;
      this.held = list;
      this.options.onApplied(list);
    } catch (err) {
      this.options.onRejected(err);
    }
  }
}
