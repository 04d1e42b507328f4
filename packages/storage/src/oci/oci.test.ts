// OCI: the contract against Debian's docker-registry (CNCF distribution), and skopeo as an
// independent client checking what was pushed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StorageError, StorageErrorCode } from '../error.js';
import { openStore } from '../open.js';
import { fetchArtifact, publishArtifact } from '../publish.js';
import { runStoreContract } from '../testing/contract.js';
import { closedPort, startProxy } from '../testing/proxy.js';
import { registryMissing, skopeoMissing, startRegistry, type TestRegistry } from '../testing/registry.js';
import { BUNDLE_LAYER, EMPTY_CONFIG, SIGNATURE_LAYER, TRUST_LAYER, WASM_CONFIG, WASM_LAYER } from './mapping.js';

const missing = registryMissing();
if (missing) console.log(`skipping OCI tests: ${missing}`);

runStoreContract(
  'OCI (docker-registry 2.8)',
  async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(`http://${registry.host}`);
    const store = await openStore(`oci+http://${proxy.url.slice('http://'.length)}/apx/policies`);
    return {
      store,
      truncateNext: (name) => {
        // Blob URLs name digests, not files: cut the next blob download whatever it is.
        void name;
        proxy.truncateNext('/blobs/sha256:');
      },
      openUnreachable: async () => openStore(`oci+http://127.0.0.1:${await closedPort()}/apx`, { timeoutMs: 2000 }),
      cleanup: async () => {
        await proxy.close();
        await registry.stop();
      },
    };
  },
  { skip: missing },
);

const skopeo = (args: string[]) => spawnSync('skopeo', args, { encoding: 'utf8', timeout: 60_000 });
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('OCI layout, checked with skopeo', { skip: missing || skopeoMissing() }, () => {
  let registry: TestRegistry;
  const wasm = Buffer.concat([Buffer.from('0061736d01000000', 'hex'), randomBytes(5000)]);
  const signature = Buffer.from(randomBytes(70).toString('base64'));
  const bundle = Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}');
  let url: string;

  before(async () => {
    registry = await startRegistry();
    url = `oci+http://${registry.host}/apx`;
    await publishArtifact(await openStore(url), { ref: 'pb-pay-v1@1.0.0+build.7', artifact: wasm, signature, bundle });
  });
  after(async () => {
    await registry?.stop();
  });

  it('maps pb-pay-v1@1.0.0+build.7 to apx/pb-pay-v1:1.0.0_build.7, one manifest with three titled layers', () => {
    const tags = skopeo(['list-tags', '--tls-verify=false', `docker://${registry.host}/apx/pb-pay-v1`]);
    assert.equal(tags.status, 0, tags.stderr);
    assert.deepEqual((JSON.parse(tags.stdout) as { Tags: string[] }).Tags, ['1.0.0_build.7']);
    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/apx/pb-pay-v1:1.0.0_build.7`]);
    assert.equal(raw.status, 0, raw.stderr);
    const m = JSON.parse(raw.stdout);
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.config.mediaType, WASM_CONFIG);
    assert.deepEqual(
      m.layers.map((l: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }) => [
        l.mediaType,
        l.digest,
        l.size,
        l.annotations['org.opencontainers.image.title'],
      ]),
      [
        [WASM_LAYER, sha(wasm), wasm.length, 'pb-pay-v1@1.0.0+build.7.wasm'],
        [SIGNATURE_LAYER, sha(signature), signature.length, 'pb-pay-v1@1.0.0+build.7.wasm.sig'],
        [BUNDLE_LAYER, sha(bundle), bundle.length, 'pb-pay-v1@1.0.0+build.7.wasm.sigstore.json'],
      ],
    );
    assert.equal(m.annotations['dev.apx.policy.version'], '1.0.0+build.7');
  });

  it('skopeo copies the version to a directory with the very bytes published', async () => {
    const out = await mkdtemp(join(tmpdir(), 'apx-skopeo-'));
    const r = skopeo(['copy', '--src-tls-verify=false', `docker://${registry.host}/apx/pb-pay-v1:1.0.0_build.7`, `dir:${out}`]);
    assert.equal(r.status, 0, r.stderr);
    for (const b of [wasm, signature, bundle]) {
      assert.deepEqual(await readFile(join(out, sha(b).slice('sha256:'.length))), b);
    }
    await rm(out, { recursive: true, force: true });
  });

  it('a blob altered in the registry storage is detected by digest, never returned', async () => {
    const dataPath = join(
      registry.storageDir,
      'docker/registry/v2/blobs/sha256',
      sha(wasm).slice(7, 9),
      sha(wasm).slice(7),
      'data',
    );
    const tampered = Buffer.from(wasm);
    tampered[100] = (tampered[100] ?? 0) ^ 0xff;
    await writeFile(dataPath, tampered);
    await assert.rejects(fetchArtifact(await openStore(url), 'pb-pay-v1@1.0.0+build.7'), (e: unknown) => {
      assert.ok(e instanceof StorageError && e.code === StorageErrorCode.INTEGRITY, String(e));
      return true;
    });
    await writeFile(dataPath, wasm);
    assert.deepEqual((await fetchArtifact(await openStore(url), 'pb-pay-v1@1.0.0+build.7'))?.artifact, wasm);
  });

  it('maps tuf/<file> to <prefix>/apx-trust/metadata:<file>, one manifest, one titled layer; beside a policy named apx-trust', async () => {
    // Its own prefix, so the listings of the store above stay as they are.
    const store = await openStore(`oci+http://${registry.host}/t`);
    const root = Buffer.from('{"signed":{"_type":"root","version":1}}');
    const token = await store.swap('tuf/1.root.json', root, null);
    await store.put('tuf-staging/production.json', Buffer.from('{"signed":{}}'));
    // A policy whose id is the trust area's first component cannot collide with it.
    await publishArtifact(store, { ref: 'apx-trust@1.0.0', artifact: wasm, signature });
    const tags = skopeo(['list-tags', '--tls-verify=false', `docker://${registry.host}/t/apx-trust/metadata`]);
    assert.equal(tags.status, 0, tags.stderr);
    assert.deepEqual((JSON.parse(tags.stdout) as { Tags: string[] }).Tags, ['1.root.json']);
    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/t/apx-trust/metadata:1.root.json`]);
    assert.equal(raw.status, 0, raw.stderr);
    // The token is the digest of the manifest the registry serves.
    assert.equal(sha(Buffer.from(raw.stdout)), token);
    const m = JSON.parse(raw.stdout);
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.config.mediaType, EMPTY_CONFIG);
    assert.deepEqual(
      m.layers.map((l: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }) => [
        l.mediaType,
        l.digest,
        l.size,
        l.annotations['org.opencontainers.image.title'],
      ]),
      [[TRUST_LAYER, sha(root), root.length, '1.root.json']],
    );
    const staging = skopeo(['list-tags', '--tls-verify=false', `docker://${registry.host}/t/apx-trust/staging`]);
    assert.deepEqual((JSON.parse(staging.stdout) as { Tags: string[] }).Tags, ['production.json']);
    assert.deepEqual(await store.list(''), [
      'apx-trust@1.0.0.wasm',
      'apx-trust@1.0.0.wasm.sig',
      'tuf-staging/production.json',
      'tuf/1.root.json',
    ]);
    assert.deepEqual(await store.list('apx-trust'), ['apx-trust@1.0.0.wasm', 'apx-trust@1.0.0.wasm.sig']);
    assert.deepEqual(await store.get('tuf/1.root.json'), root);
    await assert.rejects(store.get('tuf/bad+name.json'), (e: unknown) => {
      assert.ok(e instanceof StorageError && e.code === StorageErrorCode.INVALID_NAME, String(e));
      return true;
    });
    await assert.rejects(store.get('trust/1.root.json'), (e: unknown) => {
      assert.ok(e instanceof StorageError && e.code === StorageErrorCode.INVALID_NAME, String(e));
      return true;
    });
  });

  it('lists by prefix through the catalog and tags; an unknown version is absent', async () => {
    const store = await openStore(url);
    assert.equal(await store.get('pb-pay-v1@2.0.0.wasm'), undefined);
    assert.deepEqual(await store.list('pb-pay-v1@'), [
      'pb-pay-v1@1.0.0+build.7.wasm',
      'pb-pay-v1@1.0.0+build.7.wasm.sig',
      'pb-pay-v1@1.0.0+build.7.wasm.sigstore.json',
    ]);
    assert.deepEqual(await store.list(''), await store.list('pb'));
  });
});

describe('OCI registry authentication', { skip: missing }, () => {
  let registry: TestRegistry;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  const tokenAuth = { user: 'ci', password: 'pa55', token: 'tok-123', scopes: [] as string[] };
  const files = { artifact: Buffer.from('0061736d01000000', 'hex'), signature: Buffer.from('c2ln') };

  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(`http://${registry.host}`, { tokenAuth });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  const open = (env: Record<string, string>) => openStore(`oci+http://${proxy.url.slice('http://'.length)}/apx`, { env });

  it('exchanges APX_OCI_USERNAME/APX_OCI_PASSWORD at the token service named by the challenge', async () => {
    const store = await open({ APX_OCI_USERNAME: 'ci', APX_OCI_PASSWORD: 'pa55' });
    assert.equal((await publishArtifact(store, { ref: 'auth@1.0.0', ...files })).outcome, 'created');
    assert.deepEqual((await fetchArtifact(store, 'auth@1.0.0'))?.artifact, files.artifact);
    assert.ok(tokenAuth.scopes.includes('repository:apx/auth:pull,push'), tokenAuth.scopes.join(' '));
  });

  it('uses APX_OCI_TOKEN as a bearer token', async () => {
    assert.deepEqual((await fetchArtifact(await open({ APX_OCI_TOKEN: 'tok-123' }), 'auth@1.0.0'))?.signature, files.signature);
  });

  it('without or with wrong credentials: DENIED, and no secret in the message', async () => {
    for (const env of [{}, { APX_OCI_USERNAME: 'ci', APX_OCI_PASSWORD: 'wrong-s3cret' }, { APX_OCI_TOKEN: 'bad-t0ken' }]) {
      await assert.rejects(fetchArtifact(await open(env), 'auth@1.0.0'), (e: unknown) => {
        assert.ok(e instanceof StorageError && e.code === StorageErrorCode.DENIED, String(e));
        assert.doesNotMatch(`${e.message} ${e.hint}`, /s3cret|t0ken|pa55/);
        return true;
      });
    }
  });
});
