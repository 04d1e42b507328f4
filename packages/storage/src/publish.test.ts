import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';
import { StorageError, StorageErrorCode } from './error.js';
import { LocalStore } from './local.js';
import { parseArtifactRef } from './names.js';
import { fetchArtifact, publishArtifact, publishArtifactFiles, readArtifactFiles } from './publish.js';

const code = (c: StorageErrorCode, includes?: string) => (e: unknown) => {
  assert.ok(e instanceof StorageError, String(e));
  assert.equal(e.code, c, e.message);
  if (includes) assert.ok(e.message.includes(includes), e.message);
  return true;
};

describe('artifact references', () => {
  it('accepts <policy-id>@<semver> and refuses anything else', () => {
    assert.deepEqual(parseArtifactRef('pb-pay-v1@1.0.0'), { policyId: 'pb-pay-v1', version: '1.0.0' });
    assert.deepEqual(parseArtifactRef('a@1.2.3-rc.1+b.5'), { policyId: 'a', version: '1.2.3-rc.1+b.5' });
    for (const bad of ['pb-pay-v1', '@1.0.0', 'x@1.0', 'x@01.0.0', '../x@1.0.0', 'X@1.0.0', 'x@1.0.0/..', 'x@1.0.0_b']) {
      assert.throws(() => parseArtifactRef(bad), code(StorageErrorCode.INVALID_NAME), bad);
    }
  });
});

describe('publishing files from disk', () => {
  it("refuses an artifact without its .sig (the runbook's strict message), reads the bundle if present", async () => {
    const dir = tempDir('apx-pub-');
    await writeFile(join(dir, 'pb-pay-v1@1.0.0.wasm'), 'w');
    await assert.rejects(
      readArtifactFiles('pb-pay-v1@1.0.0.wasm', { cwd: dir }),
      code(StorageErrorCode.UNSIGNED, 'signature file not found: pb-pay-v1@1.0.0.wasm.sig (strict mode enabled)'),
    );
    await writeFile(join(dir, 'pb-pay-v1@1.0.0.wasm.sig'), 'c2ln');
    assert.equal((await readArtifactFiles(join(dir, 'pb-pay-v1@1.0.0.wasm'))).bundle, undefined);
    await writeFile(join(dir, 'pb-pay-v1@1.0.0.wasm.sigstore.json'), '{}');
    const store = new LocalStore({ root: join(dir, 'store') });
    const r = await publishArtifactFiles(store, 'pb-pay-v1@1.0.0.wasm', { cwd: dir });
    assert.equal(r.outcome, 'created');
    assert.deepEqual(await fetchArtifact(store, 'pb-pay-v1@1.0.0'), {
      ref: 'pb-pay-v1@1.0.0',
      artifact: Buffer.from('w'),
      signature: Buffer.from('c2ln'),
      bundle: Buffer.from('{}'),
    });
    await assert.rejects(readArtifactFiles('notes.txt', { cwd: dir }), code(StorageErrorCode.INVALID_NAME));
    await assert.rejects(readArtifactFiles('x@1.0.0.wasm', { cwd: dir }), code(StorageErrorCode.NOT_FOUND, 'x@1.0.0.wasm'));
  });

  it('refuses an empty signature', async () => {
    const store = new LocalStore({ root: tempDir('apx-pub-') });
    await assert.rejects(
      publishArtifact(store, { ref: 'a@1.0.0', artifact: Buffer.from('w'), signature: Buffer.alloc(0) }),
      code(StorageErrorCode.UNSIGNED),
    );
    assert.deepEqual(await store.list(), []);
  });

  it('names an interrupted publish (signature stored, artifact not) and how to recover', async () => {
    const store = new LocalStore({ root: tempDir('apx-pub-') });
    await store.put('a@1.0.0.wasm.sig', Buffer.from('old'));
    await assert.rejects(
      publishArtifact(store, { ref: 'a@1.0.0', artifact: Buffer.from('w'), signature: Buffer.from('new') }),
      (e: unknown) => {
        assert.ok(code(StorageErrorCode.CONFLICT, 'a@1.0.0.wasm is not published yet')(e));
        assert.match((e as StorageError).hint ?? '', /delete the leftover a@1\.0\.0\.wasm\.sig/);
        return true;
      },
    );
    assert.equal(await fetchArtifact(store, 'a@1.0.0'), undefined);
  });
});

describe('fetchArtifact', () => {
  /** A local store holding a@1.0.0 with its signature, bundle and both attestations; every name read is recorded. */
  async function published(): Promise<{ store: LocalStore; read: string[] }> {
    const store = new LocalStore({ root: tempDir('apx-fetch-') });
    await publishArtifact(store, {
      ref: 'a@1.0.0',
      artifact: Buffer.from('w'),
      signature: Buffer.from('s'),
      bundle: Buffer.from('{}'),
      sbom: Buffer.from('sbom'),
      provenance: Buffer.from('provenance'),
    });
    const read: string[] = [];
    const get = store.get.bind(store);
    store.get = (name, options) => {
      read.push(name);
      return get(name, options);
    };
    return { store, read };
  }

  it('reads the attestations asked for, and no others', async () => {
    const none = await published();
    assert.deepEqual(Object.keys((await fetchArtifact(none.store, 'a@1.0.0')) ?? {}).sort(), [
      'artifact',
      'bundle',
      'ref',
      'signature',
    ]);
    assert.deepEqual(none.read.sort(), ['a@1.0.0.wasm', 'a@1.0.0.wasm.sig', 'a@1.0.0.wasm.sigstore.json']);
    const provenance = await published();
    const fetched = await fetchArtifact(provenance.store, 'a@1.0.0', { attestations: ['provenance'] });
    assert.deepEqual(fetched?.provenance, Buffer.from('provenance'));
    assert.equal(fetched?.sbom, undefined);
    assert.ok(!provenance.read.includes('a@1.0.0.wasm.sbom.sigstore.json'));
    const both = await fetchArtifact((await published()).store, 'a@1.0.0', { attestations: true });
    assert.deepEqual([both?.sbom, both?.provenance], [Buffer.from('sbom'), Buffer.from('provenance')]);
  });

  it('never sees a version being published unsigned: a signature missed before the artifact appeared is read again', async () => {
    const { store } = await published();
    const get = store.get.bind(store);
    let first = true;
    // The signature read loses the race with the publish: absent the first time, stored since.
    store.get = (name, options) => {
      if (name === 'a@1.0.0.wasm.sig' && first) {
        first = false;
        return Promise.resolve(undefined);
      }
      return get(name, options);
    };
    assert.deepEqual((await fetchArtifact(store, 'a@1.0.0'))?.signature, Buffer.from('s'));
  });

  it("reports the artifact's own failure first, and a missing artifact as absent", async () => {
    const store = new LocalStore({ root: tempDir('apx-fetch-') });
    await store.put('big@1.0.0.wasm', Buffer.alloc(11));
    await store.put('big@1.0.0.wasm.sig', Buffer.alloc(70 * 1024));
    await assert.rejects(
      fetchArtifact(store, 'big@1.0.0', { maxBytes: 10 }),
      code(StorageErrorCode.TOO_LARGE, 'artifact too large'),
    );
    await store.put('gone@1.0.0.wasm.sig', Buffer.alloc(70 * 1024));
    assert.equal(await fetchArtifact(store, 'gone@1.0.0'), undefined);
  });
});

describe('LocalStore reads', () => {
  it('reads a file whole, of any size, into a buffer of its own, capped before reading', async () => {
    const store = new LocalStore({ root: tempDir('apx-read-') });
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 7);
    await store.put('big', big);
    const read = await store.get('big');
    assert.deepEqual(read, big);
    assert.equal(read?.buffer.byteLength, big.length + 1, 'one byte more than the file: its own memory, no pool');
    assert.deepEqual(await store.get('empty-missing'), undefined);
    await store.put('empty', Buffer.alloc(0));
    assert.deepEqual(await store.get('empty'), Buffer.alloc(0));
    await assert.rejects(store.get('big', { maxBytes: 1024 }), code(StorageErrorCode.TOO_LARGE, 'object too large: big'));
  });
});
