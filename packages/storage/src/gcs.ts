import type { NetworkStoreSettings } from './open.js';
import type { ArtifactStore } from './store.js';
export class GcsStore {
  static create(_u: URL, _s: NetworkStoreSettings): ArtifactStore {
    throw new Error('todo');
  }
}
