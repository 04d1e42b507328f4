// Attacks on the trust repository against running production workers (APX_TRUST_REPOSITORY):
// issue 10's list and TUF's (spec 1.5.2), each refused with its reason code, its metric and its
// security log line, and each again across a worker restart (same APX_STATE_DIR) with the
// document withheld, replayed older or corrupted where that applies. Real `apx` processes make
// the repository (trust-harness.ts); attackers write the store directly with the keys they hold.
//
// Not here: two concurrent `apx trust revoke`/approve commands (both applied, or the loser is
// told) are trust.e2e.test.ts "concurrent approvals…"; approvals by 1 of 2 keys through the
// CLI, rotation under load, freshness and runbook mode are trust-lifecycle.e2e.test.ts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindingBundle, statementBundle } from '@apx/core/testing';
import { LocalStore } from '@apx/storage';
import { TrustRepository } from '@apx/trust';
import { fails, ONLINE, ok, PRODUCTION, TrustFixture, type TrustRepo, type TrustWorker } from './trust-harness.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const NOT_TARGET = (ref: string) => `not approved for production: ${ref} is not a target of the production targets role`;

describe('e2e: attacks on the trust repository, against production workers', () => {
  let f: TrustFixture;
  before(async () => {
    f = await TrustFixture.create(['timestamp2', 'mirror-root', 'mirror-targets', 'mirror-snapshot', 'mirror-timestamp']);
  });
  after(async () => {
    await f?.cleanup();
  });

  /** A clone of the template with pb-pay-v1@1.0.0 approved, and a worker serving it. */
  async function serving(env: Record<string, string> = {}): Promise<{ r: TrustRepo; w: TrustWorker }> {
    const r = f.clone();
    const w = await r.worker(env);
    await w.loaded('pb-pay-v1@1.0.0');
    return { r, w };
  }

  describe('issue 10: a development key cannot take over production', () => {
    it('what the dev role approves does not load in production (NOT_APPROVED), also after a restart', async () => {
      const r = f.clone();
      const devBuild = await f.compile('1.1.0', { env: 'dev', key: 'devsigner' });
      r.publish(devBuild);
      const approved = await r.approve(devBuild, ['dev', ...ONLINE], 'dev');
      assert.match(approved.stderr, /✓ approved pb-pay-v1@1\.1\.0 for dev/);
      for (let restart = 0; restart < 2; restart++) {
        const w = await r.worker({ APX_POLICIES: 'pb-pay-v1@1.1.0' });
        await w.expectLoadRefused('pb-pay-v1@1.1.0', 'NOT_APPROVED', {
          message: NOT_TARGET('pb-pay-v1@1.1.0'),
          securityEvent: 'unapproved_artifact',
        });
        assert.equal((await w.get('/readyz')).status, 503);
        w.assertNotLoaded('pb-pay-v1@1.1.0');
        await w.stop();
      }
      // Following the policy, production serves what production approved.
      const w = await r.worker();
      await w.loaded('pb-pay-v1@1.0.0');
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
    });

    it('production metadata signed by a dev approver (with the online keys) is refused (SIGNATURE_THRESHOLD), also after a restart', async () => {
      const { r, w } = await serving();
      r.publish(f.build('1.1.0'));
      const from = w.mark();
      await r.forgeApproval('production', 'pb-pay-v1@1.1.0.wasm', ['dev']);
      await w.expectTrustRefused('SIGNATURE_THRESHOLD', from, /production\.json refused: production was signed by 0\/2 keys/);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0', 'the last good view keeps serving');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', 0, /production was signed by 0\/2 keys/);
      // A refresh later the forged approval has still loaded nothing.
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', again.mark());
      again.assertNotLoaded('pb-pay-v1@1.1.0');
      w.assertNotLoaded('pb-pay-v1@1.1.0');
      await again.stop();
    });

    it('an artifact signed by the dev artifact signer beside the approved bytes is refused (SIGNATURE_INVALID); the junk signature does not block the genuine pair', async () => {
      const r = f.clone();
      const devSigned = await f.compile('1.0.0', { key: 'devsigner' });
      assert.deepEqual(readFileSync(devSigned), r.read('pb-pay-v1@1.0.0.wasm'), 'same bytes: only the signer differs');
      const genuine = { sig: r.read('pb-pay-v1@1.0.0.wasm.sig'), bundle: r.read('pb-pay-v1@1.0.0.wasm.sigstore.json') };
      r.write('pb-pay-v1@1.0.0.wasm.sig', readFileSync(`${devSigned}.sig`));
      r.write('pb-pay-v1@1.0.0.wasm.sigstore.json', readFileSync(`${devSigned}.sigstore.json`));
      const w = await r.worker();
      await w.expectLoadRefused('pb-pay-v1@1.0.0', 'SIGNATURE_INVALID', {
        message: 'signature verification failed: ECDSA signature verification failed',
        securityEvent: 'artifact_tampering',
      });
      await w.expectLoadRefused('pb-pay-v1@1.0.0', 'DIGEST_BLOCKED', { securityEvent: 'artifact_tampering' });
      assert.equal((await w.decide()).status, 503);
      // The genuine signature comes back beside the same bytes: the blocked pair was (bytes, junk).
      const from = w.mark();
      r.write('pb-pay-v1@1.0.0.wasm.sig', genuine.sig);
      r.write('pb-pay-v1@1.0.0.wasm.sigstore.json', genuine.bundle);
      await w.loaded('pb-pay-v1@1.0.0', from);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
    });
  });

  it('issue 10: a removed artifact signer is unloaded at once and cannot approve itself back, also after a restart', async () => {
    const { r, w } = await serving();
    const signer = f.keyId('signer');
    let from = w.mark();
    ok(await r.trust(['signer', 'remove', '--env', 'production', signer]));
    const unloaded = await w.waitFor((l) => l.message.startsWith('policy unloaded: '), 'unload', { from });
    assert.equal(unloaded.message, `policy unloaded: revoked: key ${signer} no longer signs for production`);
    assert.deepEqual([unloaded.severity, unloaded.reason, unloaded.security_event], ['ERROR', 'REVOKED', 'revoked_artifact']);
    assert.ok((await w.metric('apx_artifacts_revoked_blocked_total')) >= 1);
    assert.equal((await w.decide()).status, 503);
    assert.equal((await w.get('/readyz')).status, 503);
    await w.expectLoadRefused('pb-pay-v1@1.0.0', 'NOT_APPROVED', {
      from,
      message: 'not approved: the trust in force names no signer',
      securityEvent: 'unapproved_artifact',
    });
    // The removed key is no approver: the CLI refuses it...
    fails(
      await r.trust(['signer', 'add', '--env', 'production', 'keys/signer.pub'], ['signer', ...ONLINE]),
      'keys/signer.key is not a key of production',
    );
    // ...and a production role it signs itself (with the online keys) is refused by the worker.
    const saved = r.read('tuf/timestamp.json');
    const pem = readFileSync(join(f.dir, 'keys', 'signer.pub'), 'utf8');
    from = w.mark();
    await r.forgeEnvironment(
      'production',
      (role) => {
        (role.apx as { signers: unknown[] }).signers.push({ keyId: signer, publicKey: pem });
      },
      ['signer'],
    );
    await w.expectTrustRefused('SIGNATURE_THRESHOLD', from, /production was signed by 0\/2 keys/);
    w.assertNotLoaded('pb-pay-v1@1.0.0', from);
    await w.stop();
    const again = await r.worker();
    await again.expectTrustRefused('SIGNATURE_THRESHOLD', 0);
    await again.expectTrustRefused('SIGNATURE_THRESHOLD', again.mark());
    again.assertNotLoaded('pb-pay-v1@1.0.0');
    await again.stop();
    // Withheld: the forged files removed, the genuine timestamp back: still unloaded.
    r.write('tuf/timestamp.json', saved);
    const third = await r.worker();
    await third.expectLoadRefused('pb-pay-v1@1.0.0', 'NOT_APPROVED', { securityEvent: 'unapproved_artifact' });
    third.assertNotLoaded('pb-pay-v1@1.0.0');
    await third.stop();
  });

  it('issue 10 and TUF rollback: trust metadata versions survive restarts; an older timestamp, snapshot or role is refused and the revoked artifact stays unloaded', async () => {
    const { r, w } = await serving();
    const before = await r.current();
    const old = {
      timestamp: r.read('tuf/timestamp.json'),
      snapshot: r.read(`tuf/${before.snapshot}.snapshot.json`),
      production: r.read(`tuf/${before.roles.production}.production.json`),
    };
    let from = w.mark();
    await r.revoke('pb-pay-v1@1.0.0', 'leaked rule');
    const unloaded = await w.waitFor((l) => l.message.startsWith('policy unloaded: '), 'unload', { from });
    assert.match(
      unloaded.message,
      /^policy unloaded: revoked: pb-pay-v1@1\.0\.0\.wasm is no longer approved for production \(leaked rule, \S+\)$/,
    );
    assert.deepEqual([unloaded.reason, unloaded.security_event], ['REVOKED', 'revoked_artifact']);
    assert.ok((await w.metric('apx_artifacts_revoked_blocked_total')) >= 1);
    const now = await r.current();
    const current = {
      timestamp: r.read('tuf/timestamp.json'),
      snapshot: r.read(`tuf/${now.snapshot}.snapshot.json`),
      production: r.read(`tuf/${now.roles.production}.production.json`),
    };
    // Replayed while running: the older timestamp (which approved 1.0.0).
    from = w.mark();
    r.write('tuf/timestamp.json', old.timestamp);
    await w.expectTrustRefused('ROLLBACK', from, /^trust repository refused, keeping production version \d+ /);
    await w.expectTrustRefused('ROLLBACK', w.mark());
    w.assertNotLoaded('pb-pay-v1@1.0.0', from);
    await w.stop();
    const state = join(r.stateDir(), 'tuf');
    const restart = async (what: string, reason: string, message?: RegExp) => {
      const again = await r.worker();
      await again.expectTrustRefused(reason, 0, message);
      await again.expectTrustRefused(reason, again.mark());
      again.assertNotLoaded('pb-pay-v1@1.0.0');
      assert.equal(await again.serving(), null, what);
      await again.stop();
    };
    // After a restart: the local copies say what was trusted.
    await restart('older timestamp after a restart', 'ROLLBACK');
    // With the local copies damaged too, the floors still remember.
    writeFileSync(join(state, 'timestamp.json'), 'garbage');
    writeFileSync(join(state, 'snapshot.json'), 'garbage');
    writeFileSync(join(state, 'production.json'), 'garbage');
    await restart(
      'older timestamp, local copies corrupted',
      'ROLLBACK',
      /trust metadata timestamp version \d+ is older than version \d+ trusted before/,
    );
    // The current timestamp, but an older snapshot under the current snapshot's name.
    r.write('tuf/timestamp.json', current.timestamp);
    r.write(`tuf/${now.snapshot}.snapshot.json`, old.snapshot);
    await restart('older snapshot under the current name', 'MISMATCH');
    // The current snapshot, but the older production role (approving 1.0.0) under the current name.
    r.write(`tuf/${now.snapshot}.snapshot.json`, current.snapshot);
    r.write(`tuf/${now.roles.production}.production.json`, old.production);
    await restart('older production role under the current name', 'MISMATCH');
    // The genuine files back: legitimate updates apply, the revoked version never returns.
    r.write(`tuf/${now.roles.production}.production.json`, current.production);
    r.publish(f.build('1.1.0'));
    await r.approve('pb-pay-v1@1.1.0');
    const last = await r.worker();
    await last.loaded('pb-pay-v1@1.1.0');
    last.assertNotLoaded('pb-pay-v1@1.0.0');
    await last.stop();
  });

  it('issue 10: rollback with ALLOWED_POLICY_VERSIONS=1.0.0,1.1.0: a version production does not approve cannot load; the floor persists across restarts', async () => {
    const r = f.clone();
    r.publish(f.build('1.1.0'));
    await r.approve('pb-pay-v1@1.1.0');
    const w = await r.worker();
    await w.loaded('pb-pay-v1@1.1.0');
    w.assertNotLoaded('pb-pay-v1@1.0.0');
    await w.stop();
    const floors = () => JSON.parse(readFileSync(join(r.stateDir(), 'floors.json'), 'utf8')) as unknown;
    assert.match(JSON.stringify(floors()), /"pb-pay-v1".*"1\.1\.0"/);
    // 1.0.0 stays in the store and in the allow-list, but production withdraws it.
    await r.revoke('pb-pay-v1@1.0.0', 'superseded by 1.1.0');
    for (let restart = 0; restart < 2; restart++) {
      const pinned = await r.worker({ APX_POLICIES: 'pb-pay-v1@1.0.0' });
      await pinned.expectLoadRefused('pb-pay-v1@1.0.0', 'NOT_APPROVED', {
        message: NOT_TARGET('pb-pay-v1@1.0.0'),
        securityEvent: 'unapproved_artifact',
      });
      pinned.assertNotLoaded('pb-pay-v1@1.0.0');
      await pinned.stop();
    }
    assert.match(JSON.stringify(floors()), /"pb-pay-v1".*"1\.1\.0"/, 'the floor survives the restarts');
    // The same state directory in runbook mode (one key, no repository): the floor refuses 1.0.0.
    const runbook = await r.worker({
      APX_TRUST_REPOSITORY: '',
      APX_TRUST_ROOT: '',
      APX_PUBLIC_KEY: join(f.dir, 'keys', 'signer.pub'),
      APX_POLICIES: 'pb-pay-v1@1.0.0',
    });
    await runbook.expectLoadRefused('pb-pay-v1@1.0.0', 'ROLLBACK_REFUSED', {
      message: 'rollback refused: pb-pay-v1@1.0.0 is older than 1.1.0, the highest version verified for pb-pay-v1',
      securityEvent: 'rollback_attempt',
    });
    await runbook.stop();
    // Approving 1.0.0 again is the approvers' deliberate rollback: the targets name it, it loads.
    await r.approve('pb-pay-v1@1.0.0');
    const rolledBack = await r.worker({ APX_POLICIES: 'pb-pay-v1@1.0.0' });
    await rolledBack.loaded('pb-pay-v1@1.0.0');
    await rolledBack.stop();
  });

  it('issue 10: a trust document at version 1e308 is refused (METADATA_INVALID) and later legitimate updates still apply, also after a restart', async () => {
    const { r, w } = await serving();
    const genuine = r.read('tuf/timestamp.json');
    const floorsBefore = readFileSync(join(r.stateDir(), 'tuf', 'floors.json'), 'utf8');
    const from = w.mark();
    // Signed with the real timestamp key: only the number is wrong.
    const forged = await r.forgeTimestamp({ version: 1e308 });
    assert.match(forged.toString('utf8'), /"version": ?1e\+308/);
    await w.expectTrustRefused('METADATA_INVALID', from);
    assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
    await w.stop();
    const again = await r.worker();
    await again.expectTrustRefused('METADATA_INVALID', 0);
    await again.stop();
    assert.equal(readFileSync(join(r.stateDir(), 'tuf', 'floors.json'), 'utf8'), floorsBefore, 'no floor at 1e308');
    r.write('tuf/timestamp.json', genuine);
    r.publish(f.build('1.1.0'));
    await r.approve('pb-pay-v1@1.1.0');
    const third = await r.worker();
    await third.loaded('pb-pay-v1@1.1.0');
    await third.stop();
  });

  it('issue 10: a signed statement with two subjects is refused (BINDING_MISMATCH)', async () => {
    const r = f.clone();
    const bundle = JSON.parse(r.read('pb-pay-v1@1.0.0.wasm.sigstore.json').toString('utf8')) as {
      dsseEnvelope: { payload: string };
    };
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      subject: Array<{ name: string; digest: Record<string, string> }>;
    };
    assert.equal(statement.subject.length, 1);
    statement.subject.push({ name: 'pb-pay-v1@9.9.9.wasm', digest: { sha256: 'ab'.repeat(32) } });
    r.write('pb-pay-v1@1.0.0.wasm.sigstore.json', statementBundle(statement, await f.privateKey('signer')));
    const w = await r.worker();
    await w.expectLoadRefused('pb-pay-v1@1.0.0', 'BINDING_MISMATCH', {
      message: 'signed binding mismatch: the statement names 2 subjects; an APX binding names exactly one',
      securityEvent: 'artifact_substitution',
    });
    w.assertNotLoaded('pb-pay-v1@1.0.0');
    await w.stop();
  });

  it('issue 10: a signed policy renamed to another policy id is refused in production (BINDING_MISMATCH, EMBEDDED_NAME_MISMATCH) even when approved', async () => {
    const r = f.clone();
    const catalog = await f.compile('1.4.2', { sample: 'public-catalog-api' });
    assert.match(catalog, /pb-catalog-v1@1\.4\.2\.wasm$/);
    r.publish(catalog, 'pb-pay-v1@1.1.0.wasm');
    // The CLI refuses to approve it (it runs the workers' verifier first)...
    fails(
      await r.trust(['approve', join(r.store, 'pb-pay-v1@1.1.0.wasm'), '--env', 'production']),
      'refusing to approve pb-pay-v1@1.1.0 for production: signed binding mismatch',
    );
    // ...but two approvers using another TUF tool approve the bytes by hash: workers still refuse.
    const bytes = r.read('pb-pay-v1@1.1.0.wasm');
    const repo = await TrustRepository.open(new LocalStore({ root: r.store }));
    const signers = await Promise.all(PRODUCTION.map((k) => f.signer(k)));
    const approval = { ref: { policyId: 'pb-pay-v1', version: '1.1.0' }, length: bytes.byteLength, sha256: sha256(bytes) };
    assert.equal((await repo.commit(repo.approve('production', approval), signers)).kind, 'published');
    const w = await r.worker({ APX_POLICIES: 'pb-pay-v1@1.1.0' });
    await w.expectLoadRefused('pb-pay-v1@1.1.0', 'BINDING_MISMATCH', {
      message: 'signed binding mismatch: artifact is signed as pb-catalog-v1@1.4.2, loaded as pb-pay-v1@1.1.0',
      securityEvent: 'artifact_substitution',
    });
    await w.stop();
    // A binding made for the new name (by the signing key's holder): the module's own name refuses it.
    const binding = { policyId: 'pb-pay-v1', version: '1.1.0', environment: 'production' };
    r.write('pb-pay-v1@1.1.0.wasm.sigstore.json', bindingBundle(bytes, binding, await f.privateKey('signer')));
    const again = await r.worker({ APX_POLICIES: 'pb-pay-v1@1.1.0' });
    await again.expectLoadRefused('pb-pay-v1@1.1.0', 'EMBEDDED_NAME_MISMATCH', {
      message: 'embedded name mismatch: the module says pb-catalog-v1@1.4.2, loaded as pb-pay-v1@1.1.0',
      securityEvent: 'artifact_substitution',
    });
    again.assertNotLoaded('pb-pay-v1@1.1.0');
    await again.stop();
  });

  describe('TUF attacks', () => {
    it('arbitrary artifact: signed bytes production did not approve are refused (TARGET_MISMATCH), also after a restart', async () => {
      const r = f.clone();
      // Compiled from an edited policy and signed by the trusted signer: only the approval is missing.
      const other = await f.compile('1.0.0', {
        tag: 'edited',
        edit: (y) => y.replace('paths: [/healthz]', 'paths: [/healthz, /debug]'),
      });
      assert.notDeepEqual(readFileSync(other), r.read('pb-pay-v1@1.0.0.wasm'));
      r.publish(other);
      for (let restart = 0; restart < 2; restart++) {
        const w = await r.worker();
        await w.expectLoadRefused('pb-pay-v1@1.0.0', 'TARGET_MISMATCH', {
          message:
            /^target mismatch: pb-pay-v1@1\.0\.0 is approved with \d+ bytes and sha256:[0-9a-f]{64}, got \d+ bytes and sha256:[0-9a-f]{64}$/,
          securityEvent: 'artifact_tampering',
        });
        w.assertNotLoaded('pb-pay-v1@1.0.0');
        await w.stop();
      }
    });

    it('mix-and-match: a snapshot from another publish under the current name is refused (MISMATCH), also after a restart', async () => {
      const { r, w } = await serving();
      const old = await r.current();
      // The next legitimate publish (approving 1.1.0) is made aside, then copied in with the
      // previous snapshot's bytes under the new snapshot's name.
      const aside = join(r.dir, 'aside');
      cpSync(r.store, aside, { recursive: true });
      r.publish(f.build('1.1.0'));
      cpSync(join(r.store, 'pb-pay-v1@1.1.0.wasm'), join(aside, 'pb-pay-v1@1.1.0.wasm'));
      ok(await r.trust(['approve', f.build('1.1.0'), '--env', 'production'], PRODUCTION, aside));
      const next = JSON.parse(readFileSync(join(aside, 'tuf', 'timestamp.json'), 'utf8')).signed.meta['snapshot.json'].version;
      const mixed = readFileSync(join(r.store, 'tuf', `${old.snapshot}.snapshot.json`));
      const from = w.mark();
      syncTuf(aside, r.store, { [`${next}.snapshot.json`]: mixed });
      await w.expectTrustRefused('MISMATCH', from);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('MISMATCH', 0);
      again.assertNotLoaded('pb-pay-v1@1.1.0');
      await again.stop();
      // The genuine snapshot: the approval applies.
      syncTuf(aside, r.store);
      const third = await r.worker();
      await third.loaded('pb-pay-v1@1.1.0');
      await third.stop();
    });

    it('endless data: an oversized timestamp.json is refused before it is read whole (TOO_LARGE), also after a restart', async () => {
      const { r, w } = await serving();
      const genuine = r.read('tuf/timestamp.json');
      const from = w.mark();
      r.write('tuf/timestamp.json', Buffer.alloc(20 * 1024 * 1024, 0x20));
      await w.expectTrustRefused('TOO_LARGE', from);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('TOO_LARGE', 0);
      await again.stop();
      r.write('tuf/timestamp.json', genuine);
      r.publish(f.build('1.1.0'));
      await r.approve('pb-pay-v1@1.1.0');
      const third = await r.worker();
      await third.loaded('pb-pay-v1@1.1.0');
      await third.stop();
    });

    it('malicious mirror: another repository with its own keys is refused (SIGNATURE_THRESHOLD), also after a restart and on a first start', async () => {
      const { r, w } = await serving();
      const mirror = join(r.dir, 'mirror');
      ok(
        await f.apx([
          'trust',
          'init',
          '--store',
          mirror,
          ...['--root-key', 'keys/mirror-root.key', '--targets-key', 'keys/mirror-targets.key'],
          ...['--snapshot-key', 'keys/mirror-snapshot.key', '--timestamp-key', 'keys/mirror-timestamp.key'],
          ...[
            '--approver',
            'dev=keys/dev.pub',
            '--approver',
            'staging=keys/staging.pub',
            '--approver',
            'production=keys/alice.pub',
          ],
          ...['--key', 'keys/dev.key', '--key', 'keys/staging.key', '--key', 'keys/alice.key'],
        ]),
      );
      const from = w.mark();
      rmSync(join(r.store, 'tuf'), { recursive: true });
      cpSync(join(mirror, 'tuf'), join(r.store, 'tuf'), { recursive: true });
      await w.expectTrustRefused('SIGNATURE_THRESHOLD', from, /tuf\/timestamp\.json refused/);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', 0);
      await again.stop();
      const first = await r.worker({}, 'fresh-state');
      await first.expectTrustRefused('SIGNATURE_THRESHOLD', 0);
      first.assertNotLoaded('pb-pay-v1@1.0.0');
      await first.stop();
    });

    it('fast-forward: a worker that accepted a huge timestamp version recovers when the timestamp key rotates; the old key is then refused, also after a restart', async () => {
      const { r, w } = await serving();
      const genuine = r.read('tuf/timestamp.json');
      // The timestamp key leaks: the attacker publishes version 999999; workers accept it (it is validly signed).
      let from = w.mark();
      await r.forgeTimestamp({ version: 999_999 });
      await w.waitForTrust(999_999, from);
      // The operators restore their timestamp and rotate the timestamp key (made aside, then
      // copied in the order a publish writes: the new root first, the timestamp last).
      r.write('tuf/timestamp.json', genuine);
      const aside = join(r.dir, 'aside');
      cpSync(r.store, aside, { recursive: true });
      ok(await r.trust(['rotate', 'timestamp', '--new-key', 'keys/timestamp2.pub'], ['root', 'snapshot', 'timestamp2'], aside));
      from = w.mark();
      cpSync(join(aside, 'tuf', '2.root.json'), join(r.store, 'tuf', '2.root.json'));
      // Between the two copies the old timestamp is no longer signed by a timestamp key.
      await w.expectTrustRefused('SIGNATURE_THRESHOLD', from);
      from = w.mark();
      syncTuf(aside, r.store);
      const recovered = await w.waitFor(
        (l) => l.message.startsWith('trust repository in force: ') && (l.trust_versions as { root: number }).root === 2,
        'the rotated root and its timestamp in force',
        { from },
      );
      assert.ok(
        (recovered.trust_versions as { timestamp: number }).timestamp < 999_999,
        'the fast-forwarded version is forgotten',
      );
      // The old timestamp key, now rotated out, cannot push a huge version again.
      from = w.mark();
      const restored = r.read('tuf/timestamp.json');
      await r.forgeTimestamp({ version: 9_999_999 }, 'timestamp');
      await w.expectTrustRefused('SIGNATURE_THRESHOLD', from, /tuf\/timestamp\.json refused/);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', 0);
      await again.stop();
      // The legitimate repository goes on with the new key.
      r.write('tuf/timestamp.json', restored);
      r.publish(f.build('1.1.0'));
      await r.approve('pb-pay-v1@1.1.0', ['alice', 'bob', 'snapshot', 'timestamp2']);
      const third = await r.worker();
      await third.loaded('pb-pay-v1@1.1.0');
      await third.stop();
    });

    it('key compromise below the threshold: one production approver key plus the online keys cannot approve (SIGNATURE_THRESHOLD), also after a restart', async () => {
      const { r, w } = await serving();
      r.publish(f.build('1.1.0'));
      const from = w.mark();
      await r.forgeApproval('production', 'pb-pay-v1@1.1.0.wasm', ['alice']);
      await w.expectTrustRefused('SIGNATURE_THRESHOLD', from, /production was signed by 1\/2 keys/);
      assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
      await w.stop();
      const again = await r.worker();
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', 0, /production was signed by 1\/2 keys/);
      await again.expectTrustRefused('SIGNATURE_THRESHOLD', again.mark());
      again.assertNotLoaded('pb-pay-v1@1.1.0');
      await again.stop();
    });
  });
});

/** Copies tuf/ files of `from` that `to` lacks or has otherwise (timestamp.json last); `override` replaces contents by name. */
function syncTuf(from: string, to: string, override: Record<string, Buffer> = {}): void {
  const names = readdirSync(join(from, 'tuf')).filter((n) => n !== 'timestamp.json');
  for (const name of [...names, 'timestamp.json']) {
    const bytes = override[name] ?? readFileSync(join(from, 'tuf', name));
    const target = join(to, 'tuf', name);
    if (!existsSync(target) || !readFileSync(target).equals(bytes)) writeFileSync(target, bytes);
  }
}
