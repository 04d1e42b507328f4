// apx_policy_info with a trust repository (issue 16): trust_version is the snapshot version in
// force (apx_trust_metadata_version{role="snapshot"}), and an approval that swaps the serving
// version replaces the series: one per policy, the new reference and snapshot.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PublicKey, sha256Hex } from '@apx/core';
import { bindingBundle, policyModule, signatureFile } from '@apx/core/testing';
import { publishArtifact } from '@apx/storage';
import { type TestRepository, testRepository } from '@apx/trust/testing/repo';
import { resolveConfig } from '../config.js';
import { type RunningWorker, startWorker } from '../worker.js';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('apx_policy_info with a trust repository', () => {
  let t: TestRepository | undefined;
  let worker: RunningWorker | undefined;
  after(async () => {
    await worker?.stop();
    await t?.cleanup();
  });

  it('labels the serving version with the snapshot in force, and follows a swap', async () => {
    const repo = await testRepository();
    t = repo;
    const approvers = () => [...repo.keys.production.slice(0, 2), ...repo.online];
    const bytes = new Map<string, Buffer>();
    const open = await repo.open();
    await open.commit(open.setSigner('production', { add: PublicKey.fromKeyObject(key.publicKey) }), approvers());
    const approve = async (version: string) => {
      const artifact = policyModule('pb-test', version);
      bytes.set(version, artifact);
      await publishArtifact(repo.store, {
        ref: `pb-test@${version}`,
        artifact,
        signature: signatureFile(artifact, key.privateKey),
        bundle: bindingBundle(artifact, { policyId: 'pb-test', version, environment: 'production' }, key.privateKey),
      });
      const r = await repo.open();
      await r.commit(
        r.approve('production', { ref: { policyId: 'pb-test', version }, length: artifact.length, sha256: sha256Hex(artifact) }),
        approvers(),
      );
    };
    await approve('1.0.0');
    const rootFile = join(repo.dir, 'root.json');
    await writeFile(rootFile, (await repo.store.get('tuf/1.root.json')) as Buffer);
    const { config } = resolveConfig({
      APX_ENV: 'production',
      APX_STORE: join(repo.dir, 'store'),
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: rootFile,
      APX_STATE_DIR: join(repo.dir, 'state'),
      ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0',
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
    });
    const w = await startWorker(config, [], {
      env: {},
      cwd: repo.dir,
      retryMinMs: 5,
      logDestination: { write: () => undefined },
    });
    worker = w;
    const read = async () => {
      const text = await w.metrics.registry.metrics();
      const snapshot = /^apx_trust_metadata_version\{role="snapshot"\} (\d+)$/m.exec(text)?.[1];
      return { snapshot, info: text.split('\n').filter((l) => l.startsWith('apx_policy_info{')) };
    };
    const before = await read();
    assert.ok(before.snapshot);
    assert.deepEqual(before.info, [
      `apx_policy_info{policy="pb-test",ref="pb-test@1.0.0",digest="sha256:${sha256Hex(bytes.get('1.0.0') as Buffer)}",trust_version="${before.snapshot}"} 1`,
    ]);

    await approve('1.1.0');
    await w.refresh();
    const later = await read();
    assert.ok(Number(later.snapshot) > Number(before.snapshot));
    assert.deepEqual(later.info, [
      `apx_policy_info{policy="pb-test",ref="pb-test@1.1.0",digest="sha256:${sha256Hex(bytes.get('1.1.0') as Buffer)}",trust_version="${later.snapshot}"} 1`,
    ]);
  });
});
