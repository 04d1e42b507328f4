// A trust repository in a temporary local store, with throwaway keys, for tests.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ArtifactStore, LocalStore } from '@apx/storage';
import { TrustRepository } from '../repository/repository.js';
import { type TestSigner, testSigner } from './keys.js';

export interface TestRepository {
  dir: string;
  store: ArtifactStore;
  keys: {
    root: TestSigner[];
    targets: TestSigner;
    snapshot: TestSigner;
    timestamp: TestSigner;
    /** Production approvers: 2 of 3. */
    production: TestSigner[];
    staging: TestSigner;
    dev: TestSigner;
  };
  /** The online keys (snapshot, timestamp) every publish needs. */
  online: TestSigner[];
  open(now?: () => Date): Promise<TrustRepository>;
  cleanup(): Promise<void>;
}

export async function testRepository(now: () => Date = () => new Date()): Promise<TestRepository> {
  const dir = await mkdtemp(join(tmpdir(), 'apx-trust-'));
  const store = new LocalStore({ root: join(dir, 'store') });
  const keys = {
    root: [testSigner('root-1'), testSigner('root-2', 'ed25519')],
    targets: testSigner('targets'),
    snapshot: testSigner('snapshot'),
    timestamp: testSigner('timestamp'),
    production: [testSigner('prod-1'), testSigner('prod-2'), testSigner('prod-3', 'ed25519')],
    staging: testSigner('staging'),
    dev: testSigner('dev'),
  };
  await TrustRepository.init(
    store,
    {
      root: { keys: keys.root.map((k) => k.key), threshold: 2 },
      targets: { keys: [keys.targets.key], threshold: 1 },
      snapshot: { keys: [keys.snapshot.key], threshold: 1 },
      timestamp: { keys: [keys.timestamp.key], threshold: 1 },
      environments: {
        production: { keys: keys.production.map((k) => k.key), threshold: 2 },
        staging: { keys: [keys.staging.key], threshold: 1 },
        dev: { keys: [keys.dev.key], threshold: 1 },
      },
    },
    // The set-up ceremony: every top-level key, and enough approvers to create each environment.
    [...keys.root, keys.targets, keys.snapshot, keys.timestamp, ...keys.production.slice(0, 2), keys.staging, keys.dev],
    { now },
  );
  return {
    dir,
    store,
    keys,
    online: [keys.snapshot, keys.timestamp],
    open: (clock = now) => TrustRepository.open(store, { now: clock }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
