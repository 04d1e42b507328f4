import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { StorageError, StorageErrorCode } from './error.js';
import { LocalStore } from './local.js';
import { openStore } from './open.js';
import { runStoreContract } from './testing/contract.js';

runStoreContract('local directory', async () => {
  const root = await mkdtemp(join(tmpdir(), 'apx-store-'));
  return { store: new LocalStore({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('LocalStore', () => {
  it('never lets a name escape its directory', async () => {
    const root = await mkdtemp(join(tmpdir(), 'apx-store-'));
    const store = new LocalStore({ root });
    for (const bad of ['../x.wasm', '/etc/passwd', 'a/../../x', 'a\\b', '', 'a//b', './x']) {
      await assert.rejects(
        store.put(bad, Buffer.from('x')),
        (e: unknown) => e instanceof StorageError && e.code === StorageErrorCode.INVALID_NAME,
        bad,
      );
      await assert.rejects(
        store.get(bad),
        (e: unknown) => e instanceof StorageError && e.code === StorageErrorCode.INVALID_NAME,
        bad,
      );
    }
    await rm(root, { recursive: true, force: true });
  });

  it('leaves no temporary file behind and hides writes in flight from list', async () => {
    const root = await mkdtemp(join(tmpdir(), 'apx-store-'));
    const store = new LocalStore({ root });
    await store.put('p@1.0.0.wasm', Buffer.from('a'), { ifAbsent: true });
    await store.put('p@1.0.0.wasm', Buffer.from('a'), { ifAbsent: true });
    await assert.rejects(store.put('p@1.0.0.wasm', Buffer.from('b'), { ifAbsent: true }));
    await writeFile(join(root, '.inflight.tmp'), 'x');
    assert.deepEqual(await readdir(root), ['.inflight.tmp', 'p@1.0.0.wasm'].sort());
    assert.deepEqual(await store.list(), ['p@1.0.0.wasm']);
    await rm(root, { recursive: true, force: true });
  });

  it('is what a plain path, ./artifacts and file:// open', async () => {
    const root = await mkdtemp(join(tmpdir(), 'apx-store-'));
    const byPath = await openStore('artifacts', { cwd: root });
    await byPath.put('o@1.0.0.wasm', Buffer.from('z'));
    const byUrl = await openStore(`file://${join(root, 'artifacts')}`);
    assert.deepEqual(await byUrl.get('o@1.0.0.wasm'), Buffer.from('z'));
    assert.deepEqual(await (await openStore(undefined, { cwd: root })).list(), ['o@1.0.0.wasm']);
    await rm(root, { recursive: true, force: true });
  });
});

describe('openStore', () => {
  it('refuses unknown schemes and credentials in URLs, without echoing the secret', async () => {
    await assert.rejects(
      openStore('ftp://x/y'),
      (e: unknown) => e instanceof StorageError && e.code === StorageErrorCode.INVALID_URL,
    );
    for (const url of ['s3://AKIA:s3cr3t@bucket/p', 'oci://user:s3cr3t@registry.example/repo', 'gs://u:s3cr3t@bucket']) {
      await assert.rejects(openStore(url), (e: unknown) => {
        assert.ok(e instanceof StorageError && e.code === StorageErrorCode.INVALID_URL, String(e));
        assert.doesNotMatch(`${e.message} ${e.hint}`, /s3cr3t/);
        return true;
      });
    }
  });
});
