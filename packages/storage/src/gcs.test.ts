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
