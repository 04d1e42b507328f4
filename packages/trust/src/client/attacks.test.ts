// The TUF attack list (TUF spec 1.5.2) against a worker's trust client, each across a
// restart too: the client keeps its trusted state in a directory, as a worker does.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { TrustError, TrustErrorCode } from '../error.js';
import { TIMESTAMP_OBJECT } from '../layout.js';
import { forge, signedOf } from '../testing/forge.js';
import { testSigner } from '../testing/keys.js';
import { type TestRepository, testRepository } from '../testing/repo.js';
import { TrustClient } from './client.js';

const code = (c: TrustErrorCode) => (err: unknown) => {
  assert.ok(err instanceof TrustError, String(err));
  assert.equal(err.code, c, err.message);
  return true;
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const approval = (version: string) => ({
  ref: { policyId: 'pb-pay-v1', version },
  length: 100,
  sha256: randomBytes(32).toString('hex'),
});

describe('trust client under attack', () => {
  let t: TestRepository;
  let root: Buffer;
  let stateDir: string;
  const repos: TestRepository[] = [];
  const client = (now?: () => Date) =>
    new TrustClient({ store: t.store, stateDir, environment: 'production', bootstrapRoot: root, ...(now ? { now } : {}) });
  const approve = async (version: string) => {
    const repo = await t.open();
    const result = await repo.commit(repo.approve('production', approval(version)), [
      ...t.keys.production.slice(0, 2),
      ...t.online,
    ]);
    assert.equal(result.kind, 'published');
  };

  beforeEach(async () => {
    t = await testRepository();
    repos.push(t);
    root = (await t.store.get('tuf/1.root.json')) as Buffer;
    stateDir = join(t.dir, 'state');
    await approve('1.0.0');
  });
  after(async () => {
    for (const r of repos) await r.cleanup();
  });

  it('rollback: a replayed older timestamp is refused, also after a restart', async () => {
    const old = (await t.store.get(TIMESTAMP_OBJECT)) as Buffer;
    await client().refresh();
    await approve('1.1.0');
    const fresh = await client().refresh();
    assert.ok(fresh.targets.has('pb-pay-v1@1.1.0.wasm'));
    await t.store.put(TIMESTAMP_OBJECT, old);
    await assert.rejects(client().refresh(), code(TrustErrorCode.ROLLBACK));
    // A restart with the local copies damaged still refuses: the floors remember.
    await writeFile(join(stateDir, 'timestamp.json'), 'garbage');
    await writeFile(join(stateDir, 'snapshot.json'), 'garbage');
    await assert.rejects(client().refresh(), code(TrustErrorCode.ROLLBACK));
  });

  it('withheld: no timestamp in the store is an error, not an empty repository', async () => {
    await client().refresh();
    await t.store.put(TIMESTAMP_OBJECT, Buffer.alloc(0));
    await assert.rejects(client().refresh(), code(TrustErrorCode.METADATA_INVALID));
  });

  it('indefinite freeze: an expired timestamp is refused', async () => {
    await client().refresh();
    const later = () => new Date(Date.now() + 2 * 86_400_000);
    await assert.rejects(client(later).refresh(), code(TrustErrorCode.EXPIRED));
  });

  it('mix-and-match: a snapshot from another publish under the current name is refused', async () => {
    const ts = await signedOf(t.store, TIMESTAMP_OBJECT);
    const current = (ts.meta as Record<string, { version: number }>)['snapshot.json']?.version as number;
    const older = (await t.store.get(`tuf/${current - 1}.snapshot.json`)) as Buffer;
    await t.store.put(`tuf/${current}.snapshot.json`, older);
    await assert.rejects(client().refresh(), code(TrustErrorCode.MISMATCH));
  });

  it('arbitrary artifact: a target added to the environment role without its keys is refused', async () => {
    const snap = await signedOf(t.store, TIMESTAMP_OBJECT);
    const snapVersion = (snap.meta as Record<string, { version: number }>)['snapshot.json']?.version as number;
    const snapshot = await signedOf(t.store, `tuf/${snapVersion}.snapshot.json`);
    const prodVersion = (snapshot.meta as Record<string, { version: number }>)['production.json']?.version as number;
    const name = `tuf/${prodVersion}.production.json`;
    const file = JSON.parse(((await t.store.get(name)) as Buffer).toString('utf8'));
    file.signed.targets['evil@6.6.6.wasm'] = { length: 1, hashes: { sha256: 'ab'.repeat(32) } };
    await t.store.put(name, Buffer.from(JSON.stringify(file)));
    await assert.rejects(client().refresh(), code(TrustErrorCode.MISMATCH));
  });

  it('key compromise below threshold: one production key plus the online keys cannot approve', async () => {
    await client().refresh();
    const snapshotJson = await signedOf(t.store, `tuf/${(await client().refresh()).versions.snapshot}.snapshot.json`);
    const prod = await signedOf(t.store, `tuf/${(await client().refresh()).versions.environment}.production.json`);
    const evil = {
      ...prod,
      version: (prod.version as number) + 1,
      targets: { 'pb-pay-v1@6.6.6.wasm': { length: 1, hashes: { sha256: 'cd'.repeat(32) } } },
    };
    const prodBytes = await forge('production', evil, [t.keys.production[0] as never]);
    await t.store.put(`tuf/${evil.version}.production.json`, prodBytes);
    const meta = {
      ...(snapshotJson.meta as object),
      'production.json': { version: evil.version, length: prodBytes.length, hashes: { sha256: sha(prodBytes) } },
    };
    const snapshot = { ...snapshotJson, version: (snapshotJson.version as number) + 1, meta };
    const snapBytes = await forge('snapshot', snapshot, [t.keys.snapshot]);
    await t.store.put(`tuf/${snapshot.version}.snapshot.json`, snapBytes);
    const ts = await signedOf(t.store, TIMESTAMP_OBJECT);
    const timestamp = {
      ...ts,
      version: (ts.version as number) + 1,
      meta: { 'snapshot.json': { version: snapshot.version, length: snapBytes.length, hashes: { sha256: sha(snapBytes) } } },
    };
    await t.store.put(TIMESTAMP_OBJECT, await forge('timestamp', timestamp, [t.keys.timestamp]));
    await assert.rejects(client().refresh(), code(TrustErrorCode.SIGNATURE_THRESHOLD));
  });

  it('a development key cannot sign production metadata', async () => {
    const ts = await signedOf(t.store, TIMESTAMP_OBJECT);
    await t.store.put(TIMESTAMP_OBJECT, await forge('timestamp', { ...ts, version: (ts.version as number) + 1 }, [t.keys.dev]));
    await assert.rejects(client().refresh(), code(TrustErrorCode.SIGNATURE_THRESHOLD));
  });

  it('endless data: an oversized timestamp is refused before it is read whole', async () => {
    await t.store.put(TIMESTAMP_OBJECT, Buffer.alloc(100_000, 0x20));
    await assert.rejects(client().refresh(), code(TrustErrorCode.TOO_LARGE));
  });

  it('a version of 1e308 is refused: it would freeze every later update', async () => {
    const ts = await signedOf(t.store, TIMESTAMP_OBJECT);
    const bytes = await forge('timestamp', { ...ts }, [t.keys.timestamp]);
    const text = bytes.toString('utf8').replace(/"version": \d+,\n {2}"expires"/, '"version": 1e308,\n  "expires"');
    await t.store.put(TIMESTAMP_OBJECT, Buffer.from(text));
    await assert.rejects(client().refresh(), code(TrustErrorCode.METADATA_INVALID));
  });

  it('malicious mirror: another repository with its own keys is refused', async () => {
    const other = await testRepository();
    repos.push(other);
    await client().refresh();
    for (const name of await other.store.list('tuf/')) {
      if (name === 'tuf/1.root.json') continue;
      await t.store.put(name, (await other.store.get(name)) as Buffer);
    }
    await assert.rejects(client().refresh(), (err: unknown) => {
      assert.ok(err instanceof TrustError);
      assert.ok(['SIGNATURE_THRESHOLD', 'ROLLBACK', 'MISMATCH'].includes(err.code), err.message);
      return true;
    });
  });

  it('fast-forward: after a timestamp key rotation, a timestamp signed by the old key is refused', async () => {
    await client().refresh();
    const newTs = testSigner('timestamp-new');
    const repo = await t.open();
    await repo.commit(repo.rotate('timestamp', { keys: [newTs.key], threshold: 1 }), [...t.keys.root, t.keys.snapshot, newTs]);
    await client().refresh();
    const ts = await signedOf(t.store, TIMESTAMP_OBJECT);
    await t.store.put(TIMESTAMP_OBJECT, await forge('timestamp', { ...ts, version: 999_999 }, [t.keys.timestamp]));
    await assert.rejects(client().refresh(), code(TrustErrorCode.SIGNATURE_THRESHOLD));
  });

  it("a restart while the store is refused: the client's verified state serves; an altered state does not", async () => {
    const oldTimestamp = (await t.store.get(TIMESTAMP_OBJECT)) as Buffer;
    await approve('1.1.0');
    const view = await client().refresh();
    await t.store.put(TIMESTAMP_OBJECT, Buffer.from('junk'));
    await assert.rejects(client().refresh(), code(TrustErrorCode.METADATA_INVALID));
    const kept = await client().loadTrusted();
    assert.deepEqual(kept.versions, view.versions);
    assert.ok(kept.targets.has('pb-pay-v1@1.1.0.wasm'));
    // The verified state expires like the store's would.
    await assert.rejects(client(() => new Date(Date.now() + 2 * 86_400_000)).loadTrusted(), code(TrustErrorCode.EXPIRED));
    // Someone puts an older (validly signed) timestamp into the state directory.
    await writeFile(join(stateDir, 'timestamp.json'), oldTimestamp);
    await assert.rejects(client().loadTrusted(), (err: unknown) => {
      assert.ok(err instanceof TrustError && ['STATE_INVALID', 'MISMATCH'].includes(err.code), String(err));
      return true;
    });
  });

  it('the first start needs a trusted root', async () => {
    const c = new TrustClient({ store: t.store, stateDir: join(t.dir, 'empty'), environment: 'production' });
    await assert.rejects(c.refresh(), code(TrustErrorCode.ROOT_MISSING));
  });
});
