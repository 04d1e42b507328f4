// The compare-and-swap part of the store contract (run inside runStoreContract): trust
// metadata is published with getVersioned + swap, so two publishers at once must never
// silently lose a change. Names are trust names (tuf/...), the ones swap exists for, and the
// only non-version names an OCI store holds.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { StorageError, StorageErrorCode } from '../error.js';
import type { ArtifactStore } from '../store.js';

const metadata = (body: Record<string, unknown>): Buffer =>
  Buffer.from(JSON.stringify({ signed: body, nonce: randomBytes(6).toString('hex') }));

function isConflict(name: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    assert.equal(err.code, StorageErrorCode.CONFLICT, `${err.code}: ${err.message}`);
    assert.ok(err.message.includes(name), `expected the name in: ${err.message}`);
    assert.match(err.message, /another writer/);
    assert.match(err.hint ?? '', /re-read .* retry/);
    return true;
  };
}

/** One read-modify-write of a JSON counter, retried on CONFLICT (as the TUF layer will). */
async function increment(store: ArtifactStore, name: string, by: string): Promise<number> {
  for (let attempt = 1; attempt <= 500; attempt++) {
    const current = await store.getVersioned(name);
    assert.ok(current, `${name} vanished`);
    const n = (JSON.parse(current.bytes.toString('utf8')) as { n: number }).n + 1;
    try {
      await store.swap(name, Buffer.from(JSON.stringify({ n, by })), current.token);
      return attempt;
    } catch (err) {
      if (!(err instanceof StorageError && err.code === StorageErrorCode.CONFLICT)) throw err;
    }
  }
  throw new Error(`${by} never won a swap of ${name}`);
}

export function runSwapContract(store: () => ArtifactStore): void {
  it('swap with expected null creates an absent object; getVersioned returns its bytes and token', async () => {
    const s = store();
    const name = 'tuf/cas-create.json';
    assert.equal(await s.getVersioned(name), undefined);
    const bytes = metadata({ version: 1 });
    const token = await s.swap(name, bytes, null);
    assert.equal(typeof token, 'string');
    assert.ok(token.length > 0);
    assert.deepEqual(await s.getVersioned(name), { bytes, token });
    assert.deepEqual(await s.get(name), bytes);
  });

  it('swap with expected null on an existing object is a CONFLICT and changes nothing', async () => {
    const s = store();
    const name = 'tuf/cas-create.json';
    const before = await s.getVersioned(name);
    assert.ok(before);
    await assert.rejects(s.swap(name, metadata({ version: 2 }), null), isConflict(name));
    assert.deepEqual(await s.getVersioned(name), before);
  });

  it('swap with the current token replaces; with a stale token it is a CONFLICT and changes nothing', async () => {
    const s = store();
    const name = 'tuf/cas-replace.json';
    const first = await s.swap(name, metadata({ version: 1 }), null);
    const v2 = metadata({ version: 2 });
    const second = await s.swap(name, v2, first);
    assert.notEqual(second, first);
    assert.deepEqual(await s.getVersioned(name), { bytes: v2, token: second });
    await assert.rejects(s.swap(name, metadata({ version: 3 }), first), isConflict(name));
    assert.deepEqual(await s.getVersioned(name), { bytes: v2, token: second });
    // A token that no version of this object ever had cannot match either.
    await assert.rejects(s.swap(name, metadata({ version: 3 }), 'not-a-token'), isConflict(name));
  });

  it('of 6 concurrent swaps from one token exactly one wins, the others are CONFLICT', async () => {
    const s = store();
    const name = 'tuf/cas-race.json';
    const base = await s.swap(name, metadata({ version: 1 }), null);
    const candidates = Array.from({ length: 6 }, (_, i) => metadata({ version: 2, writer: i }));
    const results = await Promise.allSettled(candidates.map((b) => s.swap(name, b, base)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, token: r.value }] : []));
    const summary = results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.value)).join('\n');
    assert.equal(won.length, 1, summary);
    for (const r of results) if (r.status === 'rejected') assert.ok(isConflict(name)(r.reason));
    const winner = won[0] as { i: number; token: string };
    assert.deepEqual(await s.getVersioned(name), { bytes: candidates[winner.i], token: winner.token });
  });

  it('two concurrent read-modify-write loops of 8 increments each lose no update', async () => {
    const s = store();
    const name = 'tuf/cas-counter.json';
    await s.swap(name, Buffer.from(JSON.stringify({ n: 0 })), null);
    const loop = async (by: string) => {
      for (let i = 0; i < 8; i++) await increment(s, name, by);
    };
    await Promise.all([loop('a'), loop('b')]);
    assert.equal((JSON.parse((await s.get(name))?.toString('utf8') ?? '{}') as { n: number }).n, 16);
  });

  it('trust names round-trip through put, get, list, getVersioned and swap', async () => {
    const s = store();
    // An area never written lists as empty (on OCI: a repository that does not exist).
    assert.deepEqual(await s.list('tuf-staging/'), []);
    const names = ['tuf/1.root.json', 'tuf/timestamp.json', 'tuf-staging/production.json'];
    const first = new Map(names.map((n) => [n, metadata({ name: n, version: 1 })]));
    for (const [n, b] of first) {
      assert.equal(await s.put(n, b), 'created');
      assert.deepEqual(await s.get(n), b);
    }
    assert.deepEqual(await s.list('tuf-staging/'), ['tuf-staging/production.json']);
    assert.deepEqual(await s.list('tuf/1.'), ['tuf/1.root.json']);
    const trust = await s.list('tuf');
    for (const n of names) assert.ok(trust.includes(n), `${n} not in ${trust.join(', ')}`);
    assert.ok(
      trust.every((n) => n.startsWith('tuf/') || n.startsWith('tuf-staging/')),
      trust.join(', '),
    );
    assert.deepEqual([...trust].sort(), trust);
    const all = await s.list('');
    for (const n of names) assert.ok(all.includes(n), `${n} not in list(''): ${all.join(', ')}`);
    for (const n of names) {
      const read = await s.getVersioned(n);
      assert.deepEqual(read?.bytes, first.get(n));
      const next = metadata({ name: n, version: 2 });
      const token = await s.swap(n, next, read?.token ?? null);
      assert.deepEqual(await s.getVersioned(n), { bytes: next, token });
    }
    assert.equal(await s.get('tuf/2.root.json'), undefined);
  });

  it('create-only puts work on trust names', async () => {
    const s = store();
    const name = 'tuf/2.root.json';
    const bytes = metadata({ version: 2 });
    assert.equal(await s.put(name, bytes, { ifAbsent: true }), 'created');
    assert.equal(await s.put(name, bytes, { ifAbsent: true }), 'unchanged');
    await assert.rejects(s.put(name, metadata({ version: 2 }), { ifAbsent: true }), (e: unknown) => {
      assert.ok(e instanceof StorageError && e.code === StorageErrorCode.CONFLICT, String(e));
      return true;
    });
    assert.deepEqual(await s.get(name), bytes);
  });
}
