// The repository APX writes is standard TUF: the stock tuf-js Updater, with its default HTTP
// fetcher, reads it from a plain static file server on loopback.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Updater } from 'tuf-js';
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
