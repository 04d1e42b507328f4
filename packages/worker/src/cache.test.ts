import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ArtifactRef, keysTrust, PublicKey, SignatureVerifier } from '@apx/core';
import { policyModule, signatureFile } from '@apx/core/testing';
import { tempDir } from '@apx/core/testing/hygiene';
import { DiskCache } from './cache.js';
import { RollbackFloors } from './floors.js';
import type { LoadObserver } from './loader.js';
import { PolicyLoader } from './loader.js';
import { type ArtifactSource, listingOf } from './source.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ref = { policyId: 'pb-test', version: '1.0.0' };

function loaderWith(dir: string, source: ArtifactSource, events: string[], floors = RollbackFloors.inMemory()): PolicyLoader {
  const observer: LoadObserver = {
    loaded: (_p, from) => events.push(`loaded:${from}`),
    rejected: (e) => events.push(`rejected:${e.code}`),
    unsignedAccepted: () => events.push('unsigned'),
    diskEntryRejected: (e) => events.push(`disk-rejected:${e.code}`),
  };
  return new PolicyLoader({
    source,
    trust: { kind: 'keys', trustFor: async () => keysTrust(new SignatureVerifier(PublicKey.fromKeyObject(publicKey))) },
    strict: true,
    allowList: undefined,
    runtimeFactory: () => ({
      decide: () => ({ allow: true, status: 200, reason: '', rateLimits: [], json: '{"allow":true,"status":200,"reason":""}' }),
    }),
    observer,
    memoryCacheEntries: 4,
    binding: { environment: 'dev', required: false },
    floors,
    diskCache: new DiskCache(dir),
  });
}

const storeWith = (available: boolean): ArtifactSource & { calls: number } => ({
  url: 'memory://',
  calls: 0,
  async fetch(r: ArtifactRef) {
    this.calls++;
    if (!available) throw new Error('connect ECONNREFUSED');
    const artifact = policyModule(r.policyId, r.version);
    return { artifact, signature: signatureFile(artifact, privateKey), bundle: undefined };
  },
  async versions() {
    return ['1.0.0'];
  },
  async listing() {
    return listingOf([{ policyId: 'pb-test', version: '1.0.0' }]);
  },
  async getObject() {
    return undefined;
  },
});

describe('on-disk cache (APX_CACHE_DIR)', () => {
  it('serves a restarted worker while the store is down, after re-verifying the entry', async () => {
    const dir = tempDir('apx-cache-');
    const events: string[] = [];
    await loaderWith(dir, storeWith(true), events).load(ref);
    const offline = storeWith(false);
    const loaded = await loaderWith(dir, offline, events).load(ref);
    assert.equal(offline.calls, 0);
    assert.match(loaded.artifact.digest, /^sha256:/);
    assert.deepEqual(events, ['loaded:store', 'loaded:disk']);
  });

  it('rejects a tampered disk entry, drops it, and falls back to the store', async () => {
    const dir = tempDir('apx-cache-');
    const events: string[] = [];
    await loaderWith(dir, storeWith(true), events).load(ref);
    const blob = readdirSync(join(dir, 'blobs')).find((f) => f.endsWith('.wasm')) as string;
    const bytes = readFileSync(join(dir, 'blobs', blob));
    bytes[bytes.length - 2] = 0x2b;
    writeFileSync(join(dir, 'blobs', blob), bytes);
    const store = storeWith(true);
    await loaderWith(dir, store, events).load(ref);
    assert.equal(store.calls, 1);
    assert.deepEqual(events, ['loaded:store', 'disk-rejected:SIGNATURE_INVALID', 'loaded:store']);
  });

  it('keeps no rollback state: floors live in APX_STATE_DIR only', async () => {
    const dir = tempDir('apx-cache-');
    const events: string[] = [];
    await loaderWith(dir, storeWith(true), events).load({ policyId: 'pb-test', version: '1.0.0' });
    assert.deepEqual(readdirSync(dir).sort(), ['blobs', 'refs']);
  });
});
