import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { identityPolicyJson, PublicKey, parseIdentityPolicy } from '@apx/core';
import { TrustClient } from '../client/client.js';
import { tufTrustFor } from '../client/view-trust.js';
import { TrustError, TrustErrorCode } from '../error.js';
import { testSigner } from '../testing/keys.js';
import { type TestRepository, testRepository } from '../testing/repo.js';

const ref = (version: string) => ({ policyId: 'pb-pay-v1', version });
const approval = (version: string) => ({ ref: ref(version), length: 1234, sha256: randomBytes(32).toString('hex') });
const code = (c: TrustErrorCode) => (err: unknown) => {
  assert.ok(err instanceof TrustError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};

describe('trust repository: approvals by k of n', () => {
  let t: TestRepository;
  let n = 0;
  const client = () =>
    new TrustClient({
      store: t.store,
      stateDir: join(t.dir, `state-${n++}`),
      environment: 'production',
      bootstrapRoot: rootBytes,
    });
  let rootBytes: Buffer;
  let currentRoot = [] as ReturnType<typeof testSigner>[];
  const rootNow = () => currentRoot;
  before(async () => {
    t = await testRepository();
    rootBytes = (await t.store.get('tuf/1.root.json')) as Buffer;
  });
  after(() => t.cleanup());

  it('a new repository verifies and approves nothing', async () => {
    const view = await client().refresh();
    assert.equal(view.targets.size, 0);
    assert.deepEqual(view.versions, { root: 1, timestamp: 2, snapshot: 2, targets: 2, environment: 1 });
  });

  it('set-up without the approvers: environments wait staged until their approvers sign', async () => {
    const { LocalStore } = await import('@apx/storage');
    const { TrustRepository } = await import('./repository.js');
    const store = new LocalStore({ root: join(t.dir, 'second') });
    const k = t.keys;
    const environments = { production: { keys: k.production.map((x) => x.key), threshold: 2 } };
    const top = { keys: [k.targets.key], threshold: 1 };
    const result = await TrustRepository.init(
      store,
      {
        root: top,
        targets: top,
        snapshot: { keys: [k.snapshot.key], threshold: 1 },
        timestamp: { keys: [k.timestamp.key], threshold: 1 },
        environments,
      },
      [k.targets, ...t.online],
    );
    assert.equal(result.kind, 'staged');
    const c = new TrustClient({
      store,
      stateDir: join(t.dir, 'second-state'),
      environment: 'production',
      bootstrapRoot: (await store.get('tuf/1.root.json')) as Buffer,
    });
    assert.equal((await c.refresh()).versions.environment, 0, 'not delegated yet: nothing approved');
    const done = await (await TrustRepository.open(store)).sign([
      k.production[1] as never,
      k.production[2] as never,
      ...t.online,
    ]);
    assert.equal(done.kind, 'published');
    assert.equal((await c.refresh()).versions.environment, 1);
  });

  it('production needs 2 of 3 approvers: one signature stages, a second key publishes', async () => {
    const a = approval('1.0.0');
    const repo = await t.open();
    const first = await repo.commit(repo.approve('production', a), [t.keys.production[0] as never, ...t.online]);
    assert.equal(first.kind, 'staged');
    assert.equal(first.kind === 'staged' && first.pending[0]?.signatures, 1);
    assert.equal((await client().refresh()).targets.size, 0, 'a staged approval approves nothing');
    // The same key signing again is still one signature.
    const again = await (await t.open()).sign([t.keys.production[0] as never, ...t.online]);
    assert.equal(again.kind, 'staged');
    const done = await (await t.open()).sign([t.keys.production[2] as never, ...t.online]);
    assert.equal(done.kind, 'published');
    const view = await client().refresh();
    assert.deepEqual(view.targets.get('pb-pay-v1@1.0.0.wasm'), { path: 'pb-pay-v1@1.0.0.wasm', length: 1234, sha256: a.sha256 });
  });

  it('a development key cannot sign for production', async () => {
    const repo = await t.open();
    await assert.rejects(
      repo.commit(repo.approve('production', approval('9.0.0')), [t.keys.dev, ...t.online]),
      code(TrustErrorCode.KEY_NOT_IN_ROLE),
    );
  });

  it('signers: an environment trusts the artifact keys its role lists', async () => {
    const artifactKey = PublicKey.fromKeyObject(testSigner('artifact').key.keyObject);
    let repo = await t.open();
    await repo.commit(repo.setSigner('production', { add: artifactKey }), [...t.keys.production.slice(0, 2), ...t.online]);
    assert.deepEqual(
      (await client().refresh()).signers.map((s) => s.keyId),
      [artifactKey.keyId],
    );
    repo = await t.open();
    await repo.commit(repo.setSigner('production', { removeKeyId: artifactKey.keyId }), [
      ...t.keys.production.slice(0, 2),
      ...t.online,
    ]);
    assert.deepEqual((await client().refresh()).signers, []);
  });

  it('signers: an environment can trust keyless identities, kept beside its keys', async () => {
    const identity = parseIdentityPolicy({
      issuer: 'https://token.actions.githubusercontent.com',
      subjectRegExp: '^https://github\\.com/acme/policies/\\.github/workflows/release\\.yml@refs/tags/v.*$',
      githubRepositoryId: '4242',
    });
    const sign = [...t.keys.production.slice(0, 2), ...t.online];
    let repo = await t.open();
    await repo.commit(repo.setSigner('production', { addIdentity: identity }), sign);
    const view = await client().refresh();
    assert.deepEqual(
      view.identities.map((s) => identityPolicyJson(s.identity)),
      [identityPolicyJson(identity)],
    );
    const trust = tufTrustFor(view, ref('1.0.0'));
    assert.equal(trust.identities?.[0]?.subject.kind, 'regexp');
    repo = await t.open();
    assert.throws(() => repo.setSigner('production', { addIdentity: identity }), code(TrustErrorCode.INVALID_REQUEST));
    await repo.commit(repo.setSigner('production', { removeIdentity: identity }), sign);
    assert.deepEqual((await client().refresh()).identities, []);
  });

  it('signers: retiring a key ends its validity window; workers receive it', async () => {
    const artifactKey = PublicKey.fromKeyObject(testSigner('retired').key.keyObject);
    const sign = [...t.keys.production.slice(0, 2), ...t.online];
    let repo = await t.open();
    await repo.commit(repo.setSigner('production', { add: artifactKey }), sign);
    repo = await t.open();
    await repo.commit(repo.setSigner('production', { retire: { keyId: artifactKey.keyId, at: '2026-01-01T00:00:00Z' } }), sign);
    const view = await client().refresh();
    assert.equal(view.signers.find((s) => s.keyId === artifactKey.keyId)?.notAfter, '2026-01-01T00:00:00.000Z');
    const signer = tufTrustFor(view, ref('1.0.0')).signers.find((s) => s.keyId === artifactKey.keyId);
    assert.equal(signer?.validity?.notAfter?.toISOString(), '2026-01-01T00:00:00.000Z');
    repo = await t.open();
    await repo.commit(repo.setSigner('production', { removeKeyId: artifactKey.keyId }), sign);
  });

  it('revoking removes the approval and keeps the reason', async () => {
    const repo = await t.open();
    await repo.commit(repo.revoke('production', ref('1.0.0'), 'leaked rule'), [...t.keys.production.slice(1), ...t.online]);
    const view = await client().refresh();
    assert.equal(view.targets.has('pb-pay-v1@1.0.0.wasm'), false);
    assert.equal(view.revoked.at(-1)?.reason, 'leaked rule');
  });

  it('root rotation needs a threshold of the old and of the new root keys, and clients follow it', async () => {
    const next = [testSigner('root-3'), testSigner('root-4')];
    currentRoot = next;
    const spec = { keys: next.map((k) => k.key), threshold: 2 };
    let repo = await t.open();
    // New keys alone cannot take over root.
    const onlyNew = await repo.commit(repo.rotate('root', spec), [...next, ...t.online]);
    assert.equal(onlyNew.kind, 'staged');
    repo = await t.open();
    const done = await repo.sign([...t.keys.root, ...t.online]);
    assert.equal(done.kind, 'published');
    const view = await client().refresh();
    assert.equal(view.versions.root, 2);
  });

  it('a forged tuf/timestamp.json: publishing refuses it, --recover writes a good one that clients accept', async () => {
    const c = client();
    const before = await c.refresh();
    await t.store.put('tuf/timestamp.json', Buffer.from('{"signed": {"_type": "timestamp"}}'));
    await assert.rejects(t.open(), code(TrustErrorCode.METADATA_INVALID));
    const { TrustRepository } = await import('./repository.js');
    const repo = await TrustRepository.open(t.store, { recoverTimestamp: true });
    const result = await repo.publish(t.online);
    assert.equal(result.kind, 'published');
    const after = await c.refresh();
    assert.ok(after.versions.timestamp > before.versions.timestamp, 'past every timestamp a client trusted');
    assert.deepEqual(after.targets, before.targets);
  });

  it('rotating the timestamp key: clients drop their old timestamp and go on', async () => {
    const c = client();
    const before = await c.refresh();
    const newTimestamp = testSigner('timestamp-2');
    const repo = await t.open();
    const rootKeys = rootNow();
    const result = await repo.commit(repo.rotate('timestamp', { keys: [newTimestamp.key], threshold: 1 }), [
      ...rootKeys,
      t.keys.snapshot,
      newTimestamp,
    ]);
    assert.equal(result.kind, 'published');
    const view = await c.refresh();
    assert.equal(view.versions.root, before.versions.root + 1);
    assert.ok(view.versions.timestamp > before.versions.timestamp);
    // The old timestamp key signs nothing any more.
    const stale = await t.open();
    await assert.rejects(stale.publish([t.keys.snapshot, t.keys.timestamp]), code(TrustErrorCode.KEY_NOT_IN_ROLE));
  });
});
