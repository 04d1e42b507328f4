// A production worker in trust repository mode with a keyless artifact: it loads for the
// identity the environment trusts, keeps serving across refreshes (its certificate's key is
// ephemeral and is never one of the environment's signing keys), and is unloaded when the
// environment stops trusting that identity.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindingStatement, parseIdentityPolicy, sha256Hex } from '@apx/core';
import { policyModule } from '@apx/core/testing';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '@apx/core/testing/keyless-fixtures';
import { type TestRepository, testRepository } from '@apx/trust/testing/repo';
import { resolveConfig } from '../config.js';
import { type RunningWorker, startWorker } from '../worker.js';

const REF = { policyId: 'pb-kl', version: '1.0.0' };
const IDENTITY = parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subject: DEFAULT_SUBJECT });

describe('worker with a trust repository: keyless artifacts', () => {
  let t: TestRepository;
  let svc: KeylessServices;
  let worker: RunningWorker;
  const logs: Array<Record<string, unknown>> = [];
  const approvers = () => [...t.keys.production.slice(0, 2), ...t.online];
  const serving = () => worker.policies.get(REF.policyId)?.refText;

  before(async () => {
    [t, svc] = await Promise.all([testRepository(), startKeylessServices()]);
    const artifact = policyModule(REF.policyId, REF.version);
    const statement = bindingStatement(artifact, {
      ...REF,
      environment: 'production',
      size: artifact.byteLength,
      abiVersion: null,
      compilerVersion: 'test',
      sourceDigest: null,
      signedAt: svc.clock.toISOString(),
    });
    // Keyless: the bundle (certificate, DSSE statement, Rekor entry) is the signature.
    await t.store.put('pb-kl@1.0.0.wasm.sigstore.json', Buffer.from(await svc.sign(artifact, { kind: 'dsse', statement })));
    await t.store.put('pb-kl@1.0.0.wasm', artifact);
    let repo = await t.open();
    await repo.commit(repo.setSigner('production', { addIdentity: IDENTITY }), approvers());
    repo = await t.open();
    await repo.commit(
      repo.approve('production', { ref: REF, length: artifact.length, sha256: sha256Hex(artifact) }),
      approvers(),
    );
    const rootFile = join(t.dir, 'root.json');
    await writeFile(rootFile, (await t.store.get('tuf/1.root.json')) as Buffer);
    const sigstoreRoot = join(t.dir, 'trusted_root.json');
    await writeFile(sigstoreRoot, JSON.stringify(trustedRootJson(svc)));
    const { config } = resolveConfig({
      APX_ENV: 'production',
      APX_STORE: join(t.dir, 'store'),
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: rootFile,
      APX_STATE_DIR: join(t.dir, 'state'),
      APX_SIGSTORE_TRUSTED_ROOT: sigstoreRoot,
      ALLOWED_POLICY_VERSIONS: '1.0.0',
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
    });
    worker = await startWorker(config, [], {
      env: {},
      cwd: t.dir,
      retryMinMs: 5,
      logDestination: { write: (line: string) => logs.push(JSON.parse(line)) },
    });
  });
  after(async () => {
    await worker?.stop();
    await svc?.close();
    await t?.cleanup();
  });

  it('loads for the trusted identity, names it, and keeps serving across refreshes', async () => {
    assert.equal(serving(), 'pb-kl@1.0.0');
    const loaded = logs.find((l) => l.message === 'policy loaded: pb-kl@1.0.0');
    assert.equal(loaded?.identity, `${DEFAULT_SUBJECT} from ${DEFAULT_ISSUER}`);
    const inForce = logs.find((l) => String(l.message).startsWith('trust repository in force: '));
    assert.deepEqual(inForce?.signer_identities, [`${DEFAULT_SUBJECT} from ${DEFAULT_ISSUER}`]);
    // The certificate's key is not an environment signing key: that is no withdrawal.
    await worker.refresh();
    await worker.refresh();
    assert.equal(serving(), 'pb-kl@1.0.0');
    assert.equal(
      logs.find((l) => String(l.message).startsWith('policy unloaded: ')),
      undefined,
    );
  });

  it('an identity the environment no longer trusts unloads what it signed', async () => {
    const repo = await t.open();
    await repo.commit(repo.setSigner('production', { removeIdentity: IDENTITY }), approvers());
    await worker.refresh();
    assert.equal(serving(), undefined);
    const unloaded = logs.find((l) => String(l.message).startsWith('policy unloaded: '));
    assert.match(
      String(unloaded?.message),
      new RegExp(
        `revoked: identity ${DEFAULT_SUBJECT.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} from https://issuer\\.example no longer signs for production`,
      ),
    );
    assert.equal(unloaded?.security_event, 'revoked_artifact');
  });
});
