import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
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

  // A hang here would be the bug itself: the guard turns it into a failure, not a stuck run.
  it('reads regular files only: a FIFO, a directory or a link to either is refused, never opened blocking', {
    timeout: 30_000,
  }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'apx-store-'));
    try {
      const store = new LocalStore({ root });
      await store.put('ok@1.0.0.wasm', Buffer.from('regular'));
      // More FIFOs than libuv has threads (4): a blocking open of each would stall every read after.
      for (let i = 0; i < 6; i++) execFileSync('mkfifo', [join(root, `fifo${i}@1.0.0.wasm`)]);
      await mkdir(join(root, 'tuf'));
      execFileSync('mkfifo', [join(root, 'tuf', 'timestamp.json')]);
      await mkdir(join(root, 'dir@1.0.0.wasm.sig'));
      await symlink(join(root, 'ok@1.0.0.wasm'), join(root, 'link@1.0.0.wasm'));
      await symlink(join(root, 'fifo0@1.0.0.wasm'), join(root, 'linkfifo@1.0.0.wasm'));
      await symlink(join(root, 'gone'), join(root, 'dangling@1.0.0.wasm'));
      const refused = (name: string, kind: string) =>
        assert.rejects(store.get(name), (e: unknown) => {
          assert.ok(e instanceof StorageError && e.code === StorageErrorCode.NOT_A_FILE, String(e));
          assert.equal(e.message, `not a regular file: ${name} in file://${root} is ${kind}`);
          assert.match(e.hint ?? '', /regular files only/);
          return true;
        });
      await Promise.all([0, 1, 2, 3, 4, 5].map((i) => refused(`fifo${i}@1.0.0.wasm`, 'a named pipe (FIFO)')));
      await refused('tuf/timestamp.json', 'a named pipe (FIFO)');
      await refused('dir@1.0.0.wasm.sig', 'a directory');
      await refused('linkfifo@1.0.0.wasm', 'a named pipe (FIFO)');
      await assert.rejects(store.getVersioned('tuf/timestamp.json'), { code: StorageErrorCode.NOT_A_FILE });
      await assert.rejects(store.swap('tuf/timestamp.json', Buffer.from('{}'), null), { code: StorageErrorCode.NOT_A_FILE });
      // Links to regular files are followed; a dangling one is absent; regular reads still work.
      assert.deepEqual(await store.get('link@1.0.0.wasm'), Buffer.from('regular'));
      assert.equal(await store.get('dangling@1.0.0.wasm'), undefined);
      assert.deepEqual(await store.get('ok@1.0.0.wasm'), Buffer.from('regular'));
      // Listed (so that reading them reports them), never walked into through a link.
      assert.deepEqual(await store.list('linkfifo'), ['linkfifo@1.0.0.wasm']);
      assert.ok((await store.list()).includes('fifo3@1.0.0.wasm'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
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
