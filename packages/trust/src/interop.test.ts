// The repository APX writes is standard TUF: the stock tuf-js Updater, with its default HTTP
// fetcher, reads it from a plain static file server on loopback; and with a fetcher over
// ArtifactStore, from an OCI registry.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '@apx/storage';
import { registryMissing, startRegistry } from '@apx/storage/testing/registry';
import { Updater } from 'tuf-js';
import { STORE_URL_BASE, StoreFetcher } from './client/store-fetcher.js';
import { TrustRepository } from './repository/repository.js';
import { testSigner } from './testing/keys.js';
import { type TestRepository, testRepository } from './testing/repo.js';

/** Serves files under `root` and nothing else: GET only, no directory listings. */
function staticServer(root: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (req.method !== 'GET' || path.includes('..')) {
      res.writeHead(400).end();
      return;
    }
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('interop: stock tuf-js Updater over HTTP', () => {
  let t: TestRepository;
  let server: Server;
  let base: string;
  const artifact = Buffer.from('\0asm\x01\0\0\0 pretend policy');
  const sha256 = createHash('sha256').update(artifact).digest('hex');
  before(async () => {
    t = await testRepository();
    const repo = await t.open();
    const ref = { policyId: 'pb-pay-v1', version: '1.1.0' };
    await repo.commit(repo.approve('production', { ref, length: artifact.length, sha256 }), [
      ...t.keys.production.slice(1),
      ...t.online,
    ]);
    server = await staticServer(join(t.dir, 'store'));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await t.cleanup();
  });

  it('refreshes from root 1 and finds the approved artifact with its length and SHA-256', async () => {
    const metadataDir = join(t.dir, 'stock-client');
    await mkdir(metadataDir, { recursive: true });
    await writeFile(join(metadataDir, 'root.json'), (await t.store.get('tuf/1.root.json')) as Buffer);
    const updater = new Updater({ metadataDir, metadataBaseUrl: `${base}/tuf`, targetBaseUrl: base });
    await updater.refresh();
    const info = await updater.getTargetInfo('pb-pay-v1@1.1.0.wasm');
    assert.ok(info, 'the approved artifact is a target');
    assert.equal(info.length, artifact.length);
    assert.deepEqual(info.hashes, { sha256 });
    assert.equal(await updater.getTargetInfo('pb-pay-v1@9.9.9.wasm'), undefined);
  });
});

describe('interop: stock tuf-js Updater over an ArtifactStore (OCI registry)', { skip: registryMissing() }, () => {
  it('refreshes through a StoreFetcher and finds the approved artifact', async () => {
    const registry = await startRegistry();
    const t = await testRepository();
    try {
      const store = await openStore(`oci+http://${registry.host}/apx`);
      const k = { top: testSigner('top'), snapshot: testSigner('snap'), timestamp: testSigner('ts'), prod: testSigner('prod') };
      const one = (s: typeof k.top) => ({ keys: [s.key], threshold: 1 });
      await TrustRepository.init(
        store,
        {
          root: one(k.top),
          targets: one(k.top),
          snapshot: one(k.snapshot),
          timestamp: one(k.timestamp),
          environments: { production: one(k.prod) },
        },
        [k.top, k.snapshot, k.timestamp, k.prod],
      );
      const sha = createHash('sha256').update('x').digest('hex');
      await TrustRepository.update(
        store,
        (repo) => repo.approve('production', { ref: { policyId: 'pb-pay-v1', version: '2.0.0' }, length: 1, sha256: sha }),
        [k.prod, k.snapshot, k.timestamp],
      );
      const metadataDir = join(t.dir, 'stock-oci');
      await mkdir(metadataDir, { recursive: true });
      await writeFile(join(metadataDir, 'root.json'), (await store.get('tuf/1.root.json')) as Buffer);
      const updater = new Updater({ metadataDir, metadataBaseUrl: `${STORE_URL_BASE}tuf`, fetcher: new StoreFetcher(store) });
      await updater.refresh();
      assert.deepEqual((await updater.getTargetInfo('pb-pay-v1@2.0.0.wasm'))?.hashes, { sha256: sha });
    } finally {
      await registry.stop();
      await t.cleanup();
    }
  });
});
