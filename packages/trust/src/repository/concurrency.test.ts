// Two operators publishing at once, on every kind of store: both changes end up applied (the
// loser of the compare-and-swap re-reads and re-applies) or the loser gets a conflict error.
// Never is one silently lost.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setEnv } from '@apx/core/testing/hygiene';
import { type ArtifactStore, openStore } from '@apx/storage';
import { startFakeGcs } from '@apx/storage/testing/gcs-fake';
import { startProxy } from '@apx/storage/testing/proxy';
import { registryMissing, startRegistry } from '@apx/storage/testing/registry';
import { TrustClient } from '../client/client.js';
import { TrustError, TrustErrorCode } from '../error.js';
import { testSigner } from '../testing/keys.js';
import { TrustRepository } from './repository.js';

interface Backend {
  store: ArtifactStore;
  close(): Promise<void>;
}

async function localBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'apx-trust-cc-'));
  return { store: await openStore(join(dir, 'store')), close: () => rm(dir, { recursive: true, force: true }) };
}

async function gcsBackend(): Promise<Backend> {
  const fake = await startFakeGcs(['apx-trust']);
  const store = await openStore(`gs://apx-trust/p?endpoint=${encodeURIComponent(fake.url)}`);
  return { store, close: () => fake.close() };
}

async function s3Backend(): Promise<Backend> {
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const restoreEnv = setEnv(env);
  const S3rver = createRequire(import.meta.url)('s3rver') as new (
    o: Record<string, unknown>,
  ) => { run(): Promise<{ port: number }>; close(): Promise<void> };
  const directory = await mkdtemp(join(tmpdir(), 'apx-trust-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: 'apx-trust' }],
  });
  const { port } = await server.run();
  // s3rver has no conditional writes: the test proxy adds them, atomically, as S3 does.
  const proxy = await startProxy(`http://127.0.0.1:${port}`, { conditionalWrites: true });
  const store = await openStore(`s3://apx-trust/p?endpoint=${encodeURIComponent(proxy.url)}`, { env });
  return {
    store,
    close: async () => {
      await store.close?.();
      await proxy.close();
      await server.close();
      await rm(directory, { recursive: true, force: true });
      restoreEnv();
    },
  };
}

async function ociBackend(): Promise<Backend> {
  const registry = await startRegistry();
  return { store: await openStore(`oci+http://${registry.host}/apx`), close: () => registry.stop() };
}

const backends: Array<[string, () => Promise<Backend>, string | false]> = [
  ['local directory (lock and rename)', localBackend, false],
  ['GCS (generation match, local JSON API server)', gcsBackend, false],
  ['S3 (If-Match, s3rver)', s3Backend, false],
  ['OCI (digest check, docker-registry)', ociBackend, registryMissing()],
];

for (const [label, open, skip] of backends) {
  describe(`concurrent publish: ${label}`, { skip, timeout: 120_000 }, () => {
    it('two approvals at once: both applied, or the loser is told; none is lost', async () => {
      const backend = await open();
      try {
        const k = {
          top: testSigner('top'),
          snapshot: testSigner('snapshot'),
          timestamp: testSigner('timestamp'),
          prod: testSigner('prod'),
        };
        const one = { keys: [k.top.key], threshold: 1 };
        await TrustRepository.init(
          backend.store,
          {
            root: one,
            targets: one,
            snapshot: { keys: [k.snapshot.key], threshold: 1 },
            timestamp: { keys: [k.timestamp.key], threshold: 1 },
            environments: { production: { keys: [k.prod.key], threshold: 1 } },
          },
          [k.top, k.snapshot, k.timestamp, k.prod],
        );
        const signers = [k.prod, k.snapshot, k.timestamp];
        const approve = (version: string, attempts: number) =>
          TrustRepository.update(
            backend.store,
            (repo) =>
              repo.approve('production', {
                ref: { policyId: 'pb-pay-v1', version },
                length: 10,
                sha256: randomBytes(32).toString('hex'),
              }),
            signers,
            { attempts },
          ).then(
            () => 'applied' as const,
            (err: unknown) => {
              assert.ok(err instanceof TrustError && err.code === TrustErrorCode.CONFLICT, String(err));
              return 'conflict' as const;
            },
          );
        // Without retries: at least one wins; a loser is told.
        const once = await Promise.all([approve('1.0.0', 1), approve('1.1.0', 1)]);
        assert.ok(once.includes('applied'), String(once));
        // With retries: both end up applied.
        const retried = await Promise.all([approve('2.0.0', 5), approve('2.1.0', 5), approve('2.2.0', 5)]);
        assert.deepEqual(retried, ['applied', 'applied', 'applied']);
        const dir = await mkdtemp(join(tmpdir(), 'apx-trust-cc-state-'));
        try {
          const client = new TrustClient({
            store: backend.store,
            stateDir: dir,
            environment: 'production',
            bootstrapRoot: (await backend.store.get('tuf/1.root.json')) as Buffer,
          });
          const view = await client.refresh();
          const approved = [...view.targets.keys()].sort();
          const expected = ['1.0.0', '1.1.0']
            .filter((_, i) => once[i] === 'applied')
            .concat(['2.0.0', '2.1.0', '2.2.0'])
            .map((v) => `pb-pay-v1@${v}.wasm`)
            .sort();
          assert.deepEqual(approved, expected, 'every change reported applied is in force');
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      } finally {
        await backend.close();
      }
    });
  });
}
