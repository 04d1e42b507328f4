// The one contract every ArtifactStore keeps (hono's common.case.test.ts pattern): each
// backend's test file calls runStoreContract with a factory, in a few lines.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MAX_ARTIFACT_BYTES } from '@apx/core';
import { StorageError, StorageErrorCode } from '../error.js';
import { fetchArtifact, publishArtifact } from '../publish.js';
import type { ArtifactStore, PutOutcome } from '../store.js';
import { runSwapContract } from './swap-contract.js';

export interface ContractHarness {
  /** A store over an empty namespace. */
  store: ArtifactStore;
  /** Makes the next download of `name` stop after half its bytes, if the harness can. */
  truncateNext?: (name: string) => void;
  /** The same backend pointed at a closed loopback port, with a short timeout. */
  openUnreachable?: () => Promise<ArtifactStore>;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** A reason to skip the whole suite (e.g. a binary not installed), or false. */
  skip?: string | false;
}

const wasm = (size: number): Buffer => {
  const b = randomBytes(size);
  Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).copy(b);
  return b;
};
const sig = (): Buffer => Buffer.from(randomBytes(70).toString('base64'));
const bundle = (): Buffer =>
  Buffer.from(JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', n: randomBytes(8).toString('hex') }));

function isCode(code: StorageErrorCode, includes?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    if (includes !== undefined) assert.ok(err.message.includes(includes), `expected "${includes}" in: ${err.message}`);
    return true;
  };
}

export function runStoreContract(label: string, factory: () => Promise<ContractHarness>, options: ContractOptions = {}): void {
  // A hung store fails the suite instead of hanging CI.
  describe(`ArtifactStore contract: ${label}`, { skip: options.skip ?? false, timeout: 120_000 }, () => {
    let h: ContractHarness;
    before(async () => {
      h = await factory();
    });
    after(async () => {
      await h?.cleanup();
    });

    it('round-trips bytes; a missing name is undefined', async () => {
      const bytes = wasm(100_000);
      assert.equal(await h.store.put('rt@1.0.0.wasm', bytes), 'created');
      assert.deepEqual(await h.store.get('rt@1.0.0.wasm'), bytes);
      assert.equal(await h.store.get('absent@1.0.0.wasm'), undefined);
      assert.equal(await h.store.get('rt@9.9.9.wasm'), undefined);
    });

    it("refuses an artifact of cap+1 bytes with the runbook's message", async () => {
      const big = wasm(MAX_ARTIFACT_BYTES + 1);
      await h.store.put('big@1.0.0.wasm', big);
      await assert.rejects(
        h.store.get('big@1.0.0.wasm'),
        isCode(StorageErrorCode.TOO_LARGE, `artifact too large: ${MAX_ARTIFACT_BYTES + 1} bytes (max: ${MAX_ARTIFACT_BYTES})`),
      );
      // Exactly at the cap is fine; one byte under the object's size is not.
      assert.equal((await h.store.get('big@1.0.0.wasm', { maxBytes: MAX_ARTIFACT_BYTES + 1 }))?.length, MAX_ARTIFACT_BYTES + 1);
      await assert.rejects(
        fetchArtifact(h.store, 'big@1.0.0'),
        isCode(StorageErrorCode.TOO_LARGE, `artifact too large: ${MAX_ARTIFACT_BYTES + 1} bytes (max: ${MAX_ARTIFACT_BYTES})`),
      );
      await h.store.put('small@1.0.0.wasm', wasm(2000));
      await assert.rejects(
        h.store.get('small@1.0.0.wasm', { maxBytes: 1999 }),
        isCode(StorageErrorCode.TOO_LARGE, 'artifact too large: 2000 bytes (max: 1999)'),
      );
    });

    it('detects a truncated download', async (t) => {
      if (!h.truncateNext) {
        t.skip('the protocol (a local file read) cannot be truncated by a peer');
        return;
      }
      await h.store.put('cut@1.0.0.wasm', wasm(300_000));
      h.truncateNext('cut@1.0.0.wasm');
      await assert.rejects(h.store.get('cut@1.0.0.wasm'), isCode(StorageErrorCode.INTEGRITY, 'cut@1.0.0.wasm'));
      // The stored object is intact; the next download is whole.
      assert.equal((await h.store.get('cut@1.0.0.wasm'))?.length, 300_000);
    });

    it('lists names by prefix, sorted', async () => {
      for (const n of ['ls-a@1.0.0.wasm', 'ls-a@1.0.0.wasm.sig', 'ls-a@1.1.0.wasm', 'ls-b@1.0.0.wasm']) {
        await h.store.put(n, wasm(64));
      }
      assert.deepEqual(await h.store.list('ls-a@'), ['ls-a@1.0.0.wasm', 'ls-a@1.0.0.wasm.sig', 'ls-a@1.1.0.wasm']);
      assert.deepEqual(await h.store.list('ls-a@1.0.0'), ['ls-a@1.0.0.wasm', 'ls-a@1.0.0.wasm.sig']);
      assert.deepEqual(await h.store.list('ls-c@'), []);
    });

    it('create-only puts: identical bytes are a no-op, different bytes a CONFLICT', async () => {
      const bytes = wasm(5000);
      assert.equal(await h.store.put('once@1.0.0.wasm', bytes, { ifAbsent: true }), 'created');
      assert.equal(await h.store.put('once@1.0.0.wasm', bytes, { ifAbsent: true }), 'unchanged');
      await assert.rejects(
        h.store.put('once@1.0.0.wasm', wasm(5000), { ifAbsent: true }),
        isCode(StorageErrorCode.CONFLICT, 'once@1.0.0.wasm'),
      );
      assert.deepEqual(await h.store.get('once@1.0.0.wasm'), bytes);
    });

    it('publishes a version that readers never see half-published, and fetches it', async () => {
      const files = { artifact: wasm(30_000), signature: sig(), bundle: bundle() };
      // Every write is followed by a reader's fetch: it must see nothing or a signed version.
      const seen: Array<'absent' | 'signed' | 'unsigned'> = [];
      const observing: ArtifactStore = {
        url: h.store.url,
        get: (n, o) => h.store.get(n, o),
        getVersioned: (n, o) => h.store.getVersioned(n, o),
        swap: (n, b, e, o) => h.store.swap(n, b, e, o),
        list: (p, o) => h.store.list(p, o),
        put: async (n, b, o): Promise<PutOutcome> => {
          const r = await h.store.put(n, b, o);
          const f = await fetchArtifact(h.store, 'pub@1.0.0');
          seen.push(!f ? 'absent' : f.signature && f.bundle ? 'signed' : 'unsigned');
          return r;
        },
      };
      if (h.store.putVersion) {
        const putVersion = h.store.putVersion.bind(h.store);
        observing.putVersion = async (ref, objects, o) => {
          assert.equal(seen.length, 0);
          const r = await putVersion(ref, objects, o);
          seen.push((await fetchArtifact(h.store, 'pub@1.0.0'))?.signature ? 'signed' : 'unsigned');
          return r;
        };
      }
      assert.equal(await fetchArtifact(h.store, 'pub@1.0.0'), undefined);
      const result = await publishArtifact(observing, { ref: 'pub@1.0.0', ...files });
      assert.equal(result.outcome, 'created');
      assert.ok(!seen.includes('unsigned'), `a reader saw an unsigned version: ${seen.join(', ')}`);
      assert.equal(seen.at(-1), 'signed');
      const got = await fetchArtifact(h.store, 'pub@1.0.0');
      assert.deepEqual(got, { ref: 'pub@1.0.0', ...files });

      // Idempotent re-run; immutability against other bytes, even re-signed ones.
      assert.equal((await publishArtifact(h.store, { ref: 'pub@1.0.0', ...files })).outcome, 'unchanged');
      assert.equal((await publishArtifact(h.store, { ref: 'pub@1.0.0', ...files, signature: sig() })).outcome, 'unchanged');
      await assert.rejects(
        publishArtifact(h.store, { ref: 'pub@1.0.0', artifact: wasm(30_000), signature: sig(), bundle: bundle() }),
        isCode(StorageErrorCode.CONFLICT),
      );
      await assert.rejects(
        publishArtifact(h.store, { ref: 'pub@1.0.0', artifact: wasm(30_000), signature: files.signature }),
        isCode(StorageErrorCode.CONFLICT),
      );
      assert.deepEqual(await fetchArtifact(h.store, 'pub@1.0.0'), { ref: 'pub@1.0.0', ...files });
      // A version without a bundle is fetched with bundle undefined.
      const plain = { artifact: wasm(1000), signature: sig() };
      await publishArtifact(h.store, { ref: 'pub@1.1.0-rc.1+build.7', ...plain });
      assert.deepEqual(await fetchArtifact(h.store, 'pub@1.1.0-rc.1+build.7'), {
        ref: 'pub@1.1.0-rc.1+build.7',
        ...plain,
        bundle: undefined,
      });
      assert.equal(await fetchArtifact(h.store, 'pub@1.1.0-rc.1'), undefined);
      assert.equal(await fetchArtifact(h.store, 'pub@1.1.0-rc.1+build.8'), undefined);
    });

    it('of concurrent publishes of one version, exactly one wins and the stored version is whole', async () => {
      const a = { artifact: wasm(200_000), signature: sig(), bundle: bundle() };
      const b = { artifact: wasm(200_000), signature: sig(), bundle: bundle() };
      const results = await Promise.allSettled([
        publishArtifact(h.store, { ref: 'race@2.0.0', ...a }),
        publishArtifact(h.store, { ref: 'race@2.0.0', ...b }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.value))));
      const lost = results.find((r) => r.status === 'rejected');
      assert.ok(lost && isCode(StorageErrorCode.CONFLICT)(lost.reason));
      const winner = results[0]?.status === 'fulfilled' ? a : b;
      assert.deepEqual(await fetchArtifact(h.store, 'race@2.0.0'), { ref: 'race@2.0.0', ...winner });
    });

    runSwapContract(() => h.store);

    it('an unreachable store fails with UNREACHABLE naming the URL', async (t) => {
      if (!h.openUnreachable) {
        t.skip('a local directory has no network');
        return;
      }
      const store = await h.openUnreachable();
      await assert.rejects(store.get('x@1.0.0.wasm'), isCode(StorageErrorCode.UNREACHABLE, store.url));
      await assert.rejects(
        store.put('x@1.0.0.wasm', wasm(10), { ifAbsent: true }),
        isCode(StorageErrorCode.UNREACHABLE, store.url),
      );
      await assert.rejects(store.list('x@'), isCode(StorageErrorCode.UNREACHABLE, store.url));
      await store.close?.();
    });
  });
}
