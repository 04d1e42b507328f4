// A tuf-js Fetcher over an ArtifactStore: lets tuf-js's stock Updater read a trust repository
// from any store APX supports (directory, GCS, S3, OCI), not only over HTTP.

import { Readable } from 'node:stream';
import type { ArtifactStore } from '@apx/storage';
// By module path: tuf-js's index also loads the Updater; fetcher.js alone still brings its
// HTTP client (make-fetch-happen), which is why this module is not in @apx/trust's index.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { BaseFetcher } from 'tuf-js/dist/fetcher.js';

/** The base URL to give the Updater: `metadataBaseUrl: STORE_URL_BASE + 'tuf'`. */
export const STORE_URL_BASE = 'apx-store:///';

/** Per-object cap (the Updater also caps each role's length itself). */
const MAX_OBJECT_BYTES = 10 * 1024 * 1024;

export class StoreFetcher extends BaseFetcher {
  readonly #store: ArtifactStore;

  constructor(store: ArtifactStore) {
    super();
    this.#store = store;
  }

  override async fetch(url: string): Promise<NodeJS.ReadableStream> {
    if (!url.startsWith(STORE_URL_BASE)) throw new DownloadHTTPError(`not a store URL: ${url}`, 400);
    const name = decodeURIComponent(url.slice(STORE_URL_BASE.length));
    const bytes = await this.#store.get(name, { maxBytes: MAX_OBJECT_BYTES });
    // 404 is what tells the Updater that no newer root exists (TUF 5.3.3).
    if (!bytes) throw new DownloadHTTPError(`${name} not found in ${this.#store.url}`, 404);
    return Readable.from([bytes]);
  }
}
