// The trust repository's life with production workers running: multi-party approval (2 of 3),
// key rotations under load, freshness (an expiring timestamp, then the grace), and runbook
// mode (one key, no repository) as the runbook describes it. Real `apx` processes and
// `apx worker` child processes (trust-harness.ts); attacks are trust-attacks.e2e.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ALLOWED, ONLINE, ok, PAYMENTS_GET, poll, TrustFixture, type TrustRepo, TrustWorker } from './trust-harness.js';

/** A request the payments policy allows without an identity, hence without a rate limit. */
const HEALTH = { ...PAYMENTS_GET, path: '/healthz', headers: {} };

/** Decisions sent with a fixed concurrency until stopped (or `max` sent); counts every failure. */
function load(w: TrustWorker, concurrency = 2, max = 100_000) {
  let running = true;
  const stats = { sent: 0, failed: 0, samples: [] as string[], served: new Set<string>() };
  const fail = (what: string) => {
    stats.failed++;
    if (stats.samples.length < 5) stats.samples.push(what);
  };
  const loop = async () => {
    while (running && stats.sent < max) {
      stats.sent++;
      try {
        const d = await w.decide('pb-pay-v1', HEALTH);
        // A decision: 200 or 403 with an effect and the reference that decided; never 5xx or no answer.
        if ((d.status === 200 || d.status === 403) && typeof d.body.effect === 'string' && typeof d.body.policy === 'string') {
          stats.served.add(d.body.policy);
        } else fail(`${d.status} ${JSON.stringify(d.body)}`);
      } catch (err) {
        fail(String(err));
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

describe('e2e: the trust repository with production workers running', () => {
  let f: TrustFixture;
  before(async () => {
    f = await TrustFixture.create(['root2', 'targets2', 'signer2']);
  });
  after(async () => {
    await f?.cleanup();
  });

  async function serving(env: Record<string, string> = {}): Promise<{ r: TrustRepo; w: TrustWorker }> {
    const r = f.clone();
    const w = await r.worker(env);
    await w.loaded('pb-pay-v1@1.0.0');
    return { r, w };
  }

  it('multi-party: production needs 2 of 3 approver keys; one key is not enough, nor its signature twice; the second key makes the worker load it', async () => {
    const { r, w } = await serving();
    r.publish(f.build('1.1.0'));
    const first = await r.approve('pb-pay-v1@1.1.0', ['alice', ...ONLINE]);
    assert.match(first.stderr, /staged: production version \d+ has 1 of 2 signatures; missing key ids/);
    // Barrier: a heartbeat the worker has applied, so it has seen everything published before.
    let from = w.mark();
    const ts1 = await r.heartbeat();
    const seen = await w.waitForTrust(ts1, from);
    assert.equal(seen.approved, 1, 'a staged approval approves nothing');
    const twice = ok(await r.trust(['sign'], ['alice', ...ONLINE]));
    assert.match(twice.stderr, /staged: production version \d+ has 1 of 2 signatures/);
    const ts2 = await r.heartbeat();
    await w.waitForTrust(ts2, from);
    w.assertNotLoaded('pb-pay-v1@1.1.0');
    assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
    // Written into the store by hand, one key's signature listed twice is still one signature.
    const saved = r.read('tuf/timestamp.json');
    from = w.mark();
    await r.forgeApproval('production', 'pb-pay-v1@1.1.0.wasm', ['alice'], (file) => {
      file.signatures.push({ ...(file.signatures[0] as object) });
    });
    const refused = await w.waitFor(
      (l) => l.message.startsWith('trust repository refused, keeping ') && typeof l.reason === 'string',
      'refusal of one signature listed twice',
      { from },
    );
    assert.ok(['SIGNATURE_THRESHOLD', 'METADATA_INVALID'].includes(refused.reason as string), refused.message);
    await w.expectTrustRefused(refused.reason as string, from);
    w.assertNotLoaded('pb-pay-v1@1.1.0');
    r.write('tuf/timestamp.json', saved);
    // The second approver: published, and the worker swaps 1.1.0 in.
    from = w.mark();
    const second = await r.approve('pb-pay-v1@1.1.0', ['carol', ...ONLINE]);
    assert.match(second.stderr, /^✓ approved pb-pay-v1@1\.1\.0 for production \(production version \d+, published\)$/m);
    await w.loaded('pb-pay-v1@1.1.0', from);
    await w.waitForMessage('policy swapped: pb-pay-v1@1.0.0 -> pb-pay-v1@1.1.0', 'swap', from);
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
    await w.stop();
  });

  it('rotation under load: root keys, the targets key and the artifact signer rotate while every decision is served', async () => {
    const { r, w } = await serving();
    const traffic = load(w);
    let from = w.mark();
    try {
      ok(await r.trust(['rotate', 'root', '--new-key', 'keys/root2.pub'], ['root', 'root2', ...ONLINE]));
      ok(await r.trust(['rotate', 'targets', '--new-key', 'keys/targets2.pub'], ['root2', 'targets2', ...ONLINE]));
      ok(await r.trust(['signer', 'add', '--env', 'production', 'keys/signer2.pub']));
      r.publish(await f.compile('1.1.0', { key: 'signer2' }));
      await r.approve('pb-pay-v1@1.1.0');
      await w.loaded('pb-pay-v1@1.1.0', from);
      ok(await r.trust(['signer', 'remove', '--env', 'production', f.keyId('signer')]));
      from = w.mark();
      const ts = await r.heartbeat();
      const inForce = await w.waitForTrust(ts, from);
      assert.deepEqual(
        [(inForce.trust_versions as { root: number }).root, inForce.signer_key_ids],
        [3, [f.keyId('signer2')]],
        'root rotated twice; only the new signer trusted',
      );
      // A few more decisions on the final state.
      const sentAtEnd = traffic.stats.sent;
      await poll('decisions after the rotations', () => (traffic.stats.sent > sentAtEnd + 50 ? true : undefined));
    } finally {
      await traffic.stop();
    }
    const { sent, failed, samples, served } = traffic.stats;
    assert.ok(sent > 100, `only ${sent} decisions sent`);
    assert.equal(failed, 0, `${failed} of ${sent} decisions failed during the rotations: ${samples.join('; ')}`);
    assert.deepEqual([...served].sort(), ['pb-pay-v1@1.0.0', 'pb-pay-v1@1.1.0']);
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
    assert.equal(
      w.lines(0, (l) => l.message.startsWith('trust repository refused')).length,
      0,
      'no refresh refused during the rotations',
    );
    await w.stop();
    // A restart follows the rotated chain from its state and serves the new version.
    const again = await r.worker();
    await again.loaded('pb-pay-v1@1.1.0');
    await again.stop();
  });

  it('indefinite freeze: past the timestamp expiry new loads are refused (TRUST_STALE); after APX_TRUST_GRACE loaded policies are unloaded; a restart does not revive them, a renewed timestamp does', async () => {
    const r = f.clone();
    // 1.1.0 is approved, but its artifact reaches the store only once the metadata expired.
    await r.approve(f.build('1.1.0'));
    const settings = { APX_TRUST_GRACE: '12' };
    const w = await r.worker(settings);
    await w.loaded('pb-pay-v1@1.0.0');
    let from = w.mark();
    const beforeExpiry = from;
    const ts = await r.heartbeat('15s');
    await w.waitForTrust(ts, from);
    assert.equal(await w.metric('apx_trust_fresh'), 1);
    const stale = await w.waitFor(
      (l) =>
        l.reason === 'TRUST_STALE' &&
        /^trust metadata expired at \S+: refusing new loads, serving what is loaded until \S+$/.test(l.message),
      'expiry warning',
      { from, ms: 60_000 },
    );
    assert.equal(stale.severity, 'WARNING');
    const graceEnd = Date.parse(stale.grace_end as string);
    r.publish(f.build('1.1.0'));
    // The waiting 1.1.0 is refused for staleness: said once, when the refusal became TRUST_STALE
    // (before or after the artifact arrived; retries with the same reason are not logged again).
    await w.expectLoadRefused('pb-pay-v1@1.1.0', 'TRUST_STALE', {
      from: beforeExpiry,
      message: /^trust metadata expired at \S+$/,
      metric: 'apx_policy_load_failures_total{reason="TRUST_STALE"}',
    });
    // Still serving within the grace (checked only while the grace surely lasts: no timing assertion).
    if (Date.now() < graceEnd - 3000) assert.equal(await w.serving(), 'pb-pay-v1@1.0.0');
    assert.equal(await w.metric('apx_trust_fresh'), 0);
    await w.expectTrustRefused('EXPIRED', 0, /expired/);
    const over = await w.waitFor(
      (l) => l.message.endsWith('grace period over, 1 serving version(s) unloaded'),
      'the end of the grace',
      { ms: 60_000 },
    );
    assert.deepEqual([over.severity, over.reason], ['ERROR', 'TRUST_STALE']);
    assert.equal(await w.serving(), null);
    assert.equal((await w.get('/readyz')).status, 503);
    w.assertNotLoaded('pb-pay-v1@1.1.0');
    await w.stop();
    // Restarted while the metadata is still expired: nothing serves.
    const again = await r.worker(settings);
    await again.expectTrustRefused('EXPIRED', 0);
    await again.expectTrustRefused('EXPIRED', again.mark());
    assert.equal(await again.serving(), null);
    again.assertNotLoaded('pb-pay-v1@1.0.0');
    // The heartbeat resumes: the approved versions load again.
    from = again.mark();
    await r.heartbeat('1h');
    await again.loaded('pb-pay-v1@1.1.0', from);
    assert.equal(await again.metric('apx_trust_fresh'), 1);
    await again.stop();
  });

  describe('runbook mode: APX_PUBLIC_KEY and ALLOWED_POLICY_VERSIONS, no trust repository', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'apx-runbook-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** A production worker as the runbook configures it, on a store holding `artifacts`. */
    const runbookWorker = async (name: string, artifacts: string[], env: Record<string, string> = {}) => {
      const store = join(dir, name);
      for (const a of artifacts) f.publish(store, a);
      return TrustWorker.start(f.dir, {
        APX_ENV: 'production',
        APX_STORE: store,
        APX_PUBLIC_KEY: join(f.dir, 'keys', 'signer.pub'),
        ALLOWED_POLICY_VERSIONS: ALLOWED,
        APX_STATE_DIR: join(dir, `${name}-state`),
        APX_RELOAD_INTERVAL: '1',
        ...env,
      });
    };

    it('loads and serves, and says at start which protections are off', async () => {
      const w = await runbookWorker('plain', [f.build('1.0.0')]);
      const warning = await w.waitFor((l) => l.setting === 'APX_TRUST_REPOSITORY', 'runbook-mode warning');
      assert.equal(warning.severity, 'WARNING');
      assert.match(warning.message, /APX_TRUST_REPOSITORY unset/);
      assert.deepEqual(warning.protections_off, ['revocation', 'freshness', 'approvals']);
      await w.loaded('pb-pay-v1@1.0.0');
      const d = await w.decide();
      assert.deepEqual([d.status, d.body.allow, d.body.policy], [200, true, 'pb-pay-v1@1.0.0']);
      assert.equal(await w.metric('apx_trust_protection_enabled{protection="revocation"}'), 0);
      assert.equal(await w.metric('apx_trust_protection_enabled{protection="freshness"}'), 0);
      assert.equal(await w.metric('apx_trust_protection_enabled{protection="approvals"}'), 0);
      assert.equal(await w.metric('apx_trust_protection_enabled{protection="rollback"}'), 1);
      assert.ok((await w.get('/metrics')).text.includes('apx_trust_protection_enabled{protection="revocation"} 0'));
      await w.stop();
    });

    it('refuses a tampered artifact with the runbook message', async () => {
      f.publish(join(dir, 'tampered'), f.build('1.0.0'));
      const file = join(dir, 'tampered', 'pb-pay-v1@1.0.0.wasm');
      const bytes = readFileSync(file);
      bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 0x01;
      writeFileSync(file, bytes);
      const w = await runbookWorker('tampered', []);
      await w.expectLoadRefused('pb-pay-v1@1.0.0', 'SIGNATURE_INVALID', {
        message: 'signature verification failed: ECDSA signature verification failed',
        securityEvent: 'artifact_tampering',
      });
      w.assertNotLoaded('pb-pay-v1@1.0.0');
      await w.stop();
    });

    it('refuses an unsigned artifact (strict mode) with the runbook message', async () => {
      const store = join(dir, 'unsigned');
      f.publish(store, f.build('1.0.0'));
      rmSync(join(store, 'pb-pay-v1@1.0.0.wasm.sig'));
      const w = await runbookWorker('unsigned', []);
      await w.expectLoadRefused('pb-pay-v1@1.0.0', 'SIGNATURE_MISSING', {
        message: 'signature file not found: pb-pay-v1@1.0.0.wasm.sig (strict mode enabled)',
        severity: 'WARNING',
        metric: 'apx_artifacts_unsigned_blocked_total',
      });
      w.assertNotLoaded('pb-pay-v1@1.0.0');
      await w.stop();
    });

    it('refuses a version outside ALLOWED_POLICY_VERSIONS with the runbook message', async () => {
      const v120 = await f.compile('1.2.0');
      const w = await runbookWorker('unknown', [v120], { APX_POLICIES: 'pb-pay-v1@1.2.0' });
      await w.expectLoadRefused('pb-pay-v1@1.2.0', 'VERSION_NOT_ALLOWED', {
        message: 'policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]',
        metric: 'apx_artifacts_unknown_versions_total',
      });
      w.assertNotLoaded('pb-pay-v1@1.2.0');
      await w.stop();
    });
  });
});
