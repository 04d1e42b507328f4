// A production worker in trust repository mode, in process, over a real local store and a
// real TUF repository: what the environment approves loads, a later approval swaps in, a
// revocation unloads at once and the highest version still approved takes over, and an
// artifact that is allow-listed and signed but not approved never loads.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PublicKey, sha256Hex } from '@apx/core';
import { bindingBundle, policyModule, signatureFile } from '@apx/core/testing';
import { publishArtifact } from '@apx/storage';
import { type TestRepository, testRepository } from '@apx/trust/testing/repo';
import { resolveConfig, type WorkerConfig } from '../config.js';
import { type RunningWorker, startWorker, type WorkerDeps } from '../worker.js';

const artifactKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('worker with a trust repository', () => {
  let t: TestRepository;
  let worker: RunningWorker;
  let config: WorkerConfig;
  let deps: WorkerDeps;
  const logs: Array<Record<string, unknown>> = [];
  const bytes = new Map<string, Buffer>();

  const publish = async (version: string) => {
    const artifact = policyModule('pb-test', version);
    bytes.set(version, artifact);
    await publishArtifact(t.store, {
      ref: `pb-test@${version}`,
      artifact,
      signature: signatureFile(artifact, artifactKey.privateKey),
      bundle: bindingBundle(artifact, { policyId: 'pb-test', version, environment: 'production' }, artifactKey.privateKey),
    });
  };
  const approvers = () => [...t.keys.production.slice(0, 2), ...t.online];
  const approve = async (version: string) => {
    const artifact = bytes.get(version) as Buffer;
    const repo = await t.open();
    const ref = { policyId: 'pb-test', version };
    await repo.commit(repo.approve('production', { ref, length: artifact.length, sha256: sha256Hex(artifact) }), approvers());
  };
  const serving = () => worker.policies.get('pb-test')?.refText;

  before(async () => {
    t = await testRepository();
    let repo = await t.open();
    await repo.commit(repo.setSigner('production', { add: PublicKey.fromKeyObject(artifactKey.publicKey) }), approvers());
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await publish(v);
    await approve('1.0.0');
    repo = await t.open();
    const rootFile = join(t.dir, 'root.json');
    await writeFile(rootFile, (await t.store.get('tuf/1.root.json')) as Buffer);
    ({ config } = resolveConfig({
      APX_ENV: 'production',
      APX_STORE: join(t.dir, 'store'),
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: rootFile,
      APX_STATE_DIR: join(t.dir, 'state'),
      ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0,1.2.0',
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
    }));
    deps = {
      env: {},
      cwd: t.dir,
      retryMinMs: 5,
      logDestination: { write: (line: string) => logs.push(JSON.parse(line)) },
    };
    worker = await startWorker(config, [], deps);
  });
  after(async () => {
    await worker?.stop();
    await t?.cleanup();
  });

  it('loads what production approves, not the newer allow-listed, signed but unapproved versions', () => {
    assert.equal(serving(), 'pb-test@1.0.0');
    assert.ok(logs.some((l) => String(l.message).startsWith('trust repository in force: production version')));
  });

  it('a new approval swaps in at the next refresh', async () => {
    await approve('1.1.0');
    await worker.refresh();
    assert.equal(serving(), 'pb-test@1.1.0');
  });

  it('a revocation unloads at once; the highest version still approved takes over (a signed rollback)', async () => {
    const repo = await t.open();
    await repo.commit(repo.revoke('production', { policyId: 'pb-test', version: '1.1.0' }, 'bad rule'), approvers());
    await worker.refresh();
    const unloaded = logs.find((l) => String(l.message).startsWith('policy unloaded: revoked: pb-test@1.1.0.wasm'));
    assert.ok(unloaded, 'the unload is logged');
    assert.equal(unloaded.security_event, 'revoked_artifact');
    assert.match(String(unloaded.message), /bad rule/);
    for (let i = 0; i < 200 && serving() !== 'pb-test@1.0.0'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(serving(), 'pb-test@1.0.0');
    const metrics = await worker.metrics.registry.metrics();
    assert.match(metrics, /apx_artifacts_revoked_blocked_total 1/);
    assert.match(metrics, /apx_trust_protection_enabled\{protection="revocation"\} 1/);
  });

  it('a restart while the store serves junk trust metadata serves what was verified before', async () => {
    await worker.stop();
    const good = (await t.store.get('tuf/timestamp.json')) as Buffer;
    await t.store.put('tuf/timestamp.json', Buffer.from('{"junk": true}'));
    try {
      worker = await startWorker(config, [], deps);
      assert.equal(serving(), 'pb-test@1.0.0');
      assert.ok(
        logs.some((l) =>
          String(l.message).startsWith('trust repository unavailable at start: serving the state verified before'),
        ),
      );
      assert.ok(logs.some((l) => l.reason === 'METADATA_INVALID' && l.security_event === 'trust_metadata_refused'));
    } finally {
      await t.store.put('tuf/timestamp.json', good);
    }
    await worker.refresh();
    assert.equal(serving(), 'pb-test@1.0.0');
  });

  it('a removed signer unloads what only it signed', async () => {
    const repo = await t.open();
    const keyId = PublicKey.fromKeyObject(artifactKey.publicKey).keyId;
    await repo.commit(repo.setSigner('production', { removeKeyId: keyId }), approvers());
    await worker.refresh();
    assert.equal(serving(), undefined);
    assert.ok(logs.some((l) => String(l.message).includes(`key ${keyId} no longer signs for production`)));
  });
});
