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
