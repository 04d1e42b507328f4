// GCS through the official @google-cloud/storage client against the fake GCS JSON API
// server (testing/gcs-fake.ts), behind the test proxy for truncation.
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { openStore } from './open.js';
import { runStoreContract } from './testing/contract.js';
import { type FakeGcs, startFakeGcs } from './testing/gcs-fake.js';
import { closedPort, startProxy } from './testing/proxy.js';

let fake: FakeGcs | undefined;

runStoreContract('GCS (@google-cloud/storage against a fake JSON API)', async () => {
  fake = await startFakeGcs(['apx-artifacts']);
  const proxy = await startProxy(fake.url);
  // A short timeout: the client never reports a cut body, only the idle timer catches it.
  const store = await openStore(`gs://apx-artifacts/policies?endpoint=${encodeURIComponent(proxy.url)}`, { timeoutMs: 2000 });
  return {
    store,
    truncateNext: (name) => proxy.truncateNext(`policies/${name}?alt=media`),
    openUnreachable: async () =>
      openStore(`gs://apx-artifacts/p?endpoint=http://127.0.0.1:${await closedPort()}`, { timeoutMs: 2000 }),
    cleanup: async () => {
      await proxy.close();
    },
  };
});

after(async () => {
  await fake?.close();
});

it('the fake saw only requests it implements, and creates were conditional', () => {
  assert.ok(fake);
  assert.deepEqual(fake.unhandled, []);
  assert.ok(
    fake.log.some((l) => /^POST \/upload\/storage\/v1\/b\/apx-artifacts\/o\?.*ifGenerationMatch=0/.test(l)),
    fake.log.join('\n'),
  );
});

it('the store swapped with ifGenerationMatch set to the generation it read', () => {
  assert.ok(fake);
  assert.ok(
    fake.log.some((l) => /^POST \/upload\/storage\/v1\/b\/apx-artifacts\/o\?.*ifGenerationMatch=[1-9]/.test(l)),
    fake.log.join('\n'),
  );
});

it('the fake keeps generations as GCS does: new and larger per write, ifGenerationMatch on multipart and resumable uploads', async () => {
  const { Storage } = await import('@google-cloud/storage');
  const own = await startFakeGcs(['b']);
  try {
    const file = new Storage({ apiEndpoint: own.url }).bucket('b').file('tuf/timestamp.json');
    const generation = async () => Number((await file.getMetadata())[0].generation);
    // md5 like the store (the fake reports no crc32c).
    const validation = 'md5' as const;
    await file.save('v1', { resumable: false, validation, preconditionOpts: { ifGenerationMatch: 0 } });
    const g1 = await generation();
    for (const resumable of [false, true]) {
      const stale = await generation();
      await file.save(`v2 ${resumable}`, { resumable, validation, preconditionOpts: { ifGenerationMatch: stale } });
      const next = await generation();
      assert.ok(next > stale, `${next} > ${stale}`);
      // The generation read before that write no longer matches: 412, content unchanged.
      await assert.rejects(
        file.save('lost', { resumable, validation, preconditionOpts: { ifGenerationMatch: stale } }),
        (e: unknown) => (e as { code?: unknown }).code === 412,
      );
      assert.equal((await file.download({ validation: false }))[0].toString(), `v2 ${resumable}`);
    }
    assert.ok((await generation()) > g1);
    assert.deepEqual(own.unhandled, []);
    assert.ok(
      own.log.some((l) => /uploadType=resumable.*ifGenerationMatch=[1-9]/.test(l)),
      own.log.join('\n'),
    );
  } finally {
    await own.close();
  }
});

it('the fake also serves the client paths the store does not use today: resumable upload, download, delete', async () => {
  const { Storage } = await import('@google-cloud/storage');
  const own = await startFakeGcs(['b']);
  try {
    const file = new Storage({ apiEndpoint: own.url }).bucket('b').file('r/x@1.0.0.wasm');
    const bytes = Buffer.alloc(70_000, 7);
    const create = { resumable: true, validation: 'md5' as const, preconditionOpts: { ifGenerationMatch: 0 } };
    await file.save(bytes, create);
    assert.deepEqual((await file.download({ validation: false }))[0], bytes);
    await assert.rejects(file.save(Buffer.from('other'), create), (e: unknown) => (e as { code?: unknown }).code === 412);
    await file.delete();
    assert.deepEqual((await file.exists())[0], false);
    assert.deepEqual(own.unhandled, []);
    assert.ok(own.log.some((l) => l.includes('uploadType=resumable&upload_id=')));
  } finally {
    await own.close();
  }
});
