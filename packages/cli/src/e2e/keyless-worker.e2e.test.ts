// Issue 12's first must-show, through the real CLI (separate processes) against the local
// Sigstore services on loopback: `apx compile --keyless` with a token for identity A from the
// local issuer, `apx publish` to a directory store, a trust repository whose production role
// names A (issuer and subject) as its artifact signer, `apx trust approve`, and production
// workers (`apx worker`) with APX_SIGSTORE_TRUSTED_ROOT: one whose role names A loads the
// artifact and decides with it; one whose role names identity B refuses it with its own reason
// code, metric and ERROR line, and loads it once its role trusts A too.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type SigstoreServices, startSigstoreServices } from '@apx/sign/testing/sigstore-services';
import { apxAsync, REPO } from './harness.js';
import { fails, ok, TrustWorker } from './trust-harness.js';

const IDENTITY_A = 'https://github.com/acme/policies/.github/workflows/release.yml@refs/heads/main';
const IDENTITY_B = 'https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main';
const REF = 'pb-pay-v1@1.0.0';
const APPROVERS = ['--key', 'keys/alice.key'];
const ONLINE = ['--key', 'keys/snapshot.key', '--key', 'keys/timestamp.key'];
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('keyless artifacts in production workers, through the real CLI', () => {
  let services: SigstoreServices;
  let dir: string;
  // Throwaway keys with an empty password; no ambient identity from the machine running the tests.
  const run = (args: string[]) =>
    apxAsync(dir, args, {
      COSIGN_PASSWORD: '',
      APX_AUDIT_LOG: join(dir, 'audit.log'),
      SIGSTORE_ID_TOKEN: undefined,
      ACTIONS_ID_TOKEN_REQUEST_URL: undefined,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined,
      GITHUB_ACTIONS: undefined,
    });
  const trust = (store: string, args: string[], keys = [...APPROVERS, ...ONLINE]) =>
    run(['trust', ...args, '--store', store, ...keys]);
  const identityFlags = (subject: string) => ['--certificate-identity', subject, '--certificate-oidc-issuer', services.issuer];
  /** A production worker on a repository in `store` (trust repository mode, keyless trust material pinned). */
  const worker = (store: string, state: string) =>
    TrustWorker.start(dir, {
      APX_ENV: 'production',
      APX_STORE: store,
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: join(dir, 'root.json'),
      APX_STATE_DIR: join(dir, state),
      APX_SIGSTORE_TRUSTED_ROOT: join(dir, 'trusted_root.json'),
      ALLOWED_POLICY_VERSIONS: '1.0.0',
      APX_RELOAD_INTERVAL: '1',
    });

  before(async () => {
    services = await startSigstoreServices({ openssl: false });
    dir = mkdtempSync(join(tmpdir(), 'apx-keyless-worker-'));
    writeFileSync(join(dir, 'trusted_root.json'), services.trustedRootJson);
    cpSync(join(REPO, 'configs/samples/payments-api.yaml'), join(dir, 'payments-api.yaml'));
    const keys = ['root', 'targets', 'snapshot', 'timestamp', 'dev', 'staging', 'alice'];
    for (let i = 0; i < keys.length; i += 2) {
      await Promise.all(
        keys.slice(i, i + 2).map(async (k) => ok(await run(['generate-key-pair', '--output-key-prefix', `keys/${k}`]))),
      );
    }
  });
  after(async () => {
    await TrustWorker.stopAll();
    await services?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs with a token for A, publishes, approves; the worker trusting A loads it, the one trusting B refuses it', async () => {
    // Sign keylessly as A, for production; and publish to a directory store.
    const compiled = ok(
      await run([
        'compile',
        '--env',
        'production',
        '--keyless',
        '--identity-token',
        services.token(IDENTITY_A),
        ...['--fulcio-url', services.fulcioUrl, '--rekor-url', services.rekorUrl],
        ...['--timestamp-server-url', services.tsaUrl],
        '--out',
        'build',
        'payments-api.yaml',
      ]),
    );
    assert.match(compiled.stderr, new RegExp(`identity ${reEscape(IDENTITY_A)} \\(issuer ${reEscape(services.issuer)}\\)`));
    const storeA = join(dir, 'store-a');
    ok(await run(['publish', '--store', storeA, `build/${REF}.wasm`]));

    // Repository A: production (one approver) trusts identity A, issuer and subject exactly.
    ok(
      await run([
        'trust',
        'init',
        '--store',
        storeA,
        ...['--root-key', 'keys/root.key', '--targets-key', 'keys/targets.key'],
        ...['--snapshot-key', 'keys/snapshot.key', '--timestamp-key', 'keys/timestamp.key'],
        ...['--approver', 'dev=keys/dev.pub', '--approver', 'staging=keys/staging.pub'],
        ...['--approver', 'production=keys/alice.pub'],
        ...['--key', 'keys/dev.key', '--key', 'keys/staging.key', ...APPROVERS],
      ]),
    );
    cpSync(join(storeA, 'tuf', '1.root.json'), join(dir, 'root.json'));
    const added = ok(await trust(storeA, ['signer', 'add', '--env', 'production', ...identityFlags(IDENTITY_A)]));
    assert.match(
      added.stderr,
      new RegExp(`production trusts keyless identity ${reEscape(IDENTITY_A)} from ${reEscape(services.issuer)}`),
    );

    // The approver's check is the workers': against the public-good root the local Fulcio is unknown.
    const publicGood = await trust(storeA, ['approve', REF, '--env', 'production']);
    fails(publicGood, `refusing to approve ${REF} for production: `);
    assert.match(publicGood.stderr, /against the trusted root/);
    ok(await trust(storeA, ['approve', REF, '--env', 'production', '--sigstore-trusted-root', 'trusted_root.json']));

    // Repository B: the same repository, whose production role then trusts identity B instead.
    const storeB = join(dir, 'store-b');
    cpSync(storeA, storeB, { recursive: true });
    ok(await trust(storeB, ['signer', 'add', '--env', 'production', ...identityFlags(IDENTITY_B)]));
    ok(await trust(storeB, ['signer', 'remove', '--env', 'production', ...identityFlags(IDENTITY_A)]));
    // Approving again under B is refused by the approver's own check, naming the mismatch.
    const underB = await trust(storeB, ['approve', REF, '--env', 'production', '--sigstore-trusted-root', 'trusted_root.json']);
    fails(underB, `refusing to approve ${REF} for production: certificate identity mismatch: `);

    const [a, b] = await Promise.all([worker(storeA, 'state-a'), worker(storeB, 'state-b')]);

    // A: loads, names the identity, decides.
    const loaded = await a.loaded(REF);
    assert.equal(loaded.identity, `${IDENTITY_A} from ${services.issuer}`);
    const decision = await a.decide();
    assert.deepEqual([decision.status, decision.body.allow, decision.body.policy], [200, true, REF]);
    const policies = (await a.get('/v1/policies')).body as Array<Record<string, unknown>>;
    assert.equal(policies[0]?.identity, `${IDENTITY_A} from ${services.issuer}`);
    assert.equal(policies[0]?.status, 'ready');

    // B: refused, its own reason, metric and ERROR line naming both identities.
    const refused = await b.expectLoadRefused(REF, 'IDENTITY_MISMATCH', {
      message: `certificate identity mismatch: the certificate's subject (SAN) is ${IDENTITY_A}, expected ${IDENTITY_B}`,
      securityEvent: 'untrusted_identity',
    });
    assert.match(String(refused.digest), /^sha256:[0-9a-f]{64}$/);
    assert.equal(await b.metric('apx_artifacts_verification_failures_total{reason="IDENTITY_MISMATCH"}'), 1);
    assert.equal(await a.metric('apx_artifacts_verification_failures_total{reason="IDENTITY_MISMATCH"}'), 0);
    assert.equal(await b.serving(), null);
    b.assertNotLoaded(REF);

    // Repository B trusts A too: its worker loads the artifact at the next refresh.
    const mark = b.mark();
    ok(await trust(storeB, ['signer', 'add', '--env', 'production', ...identityFlags(IDENTITY_A)]));
    await b.loaded(REF, mark);
    assert.equal(await b.serving(), REF);

    // Meanwhile (many refreshes later) A still serves: an ephemeral certificate key is no
    // signer the role could have removed, and the identity it trusts still accepts it.
    assert.equal(await a.serving(), REF);
    assert.deepEqual(
      a.lines(0, (l) => l.message.startsWith('policy unloaded: ')),
      [],
    );
    // The refusal was reported once, however often B retried.
    assert.equal(b.lines(0, (l) => l.reason === 'IDENTITY_MISMATCH' && l.severity === 'ERROR').length, 1);
  });
});
