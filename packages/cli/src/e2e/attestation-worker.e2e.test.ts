// Workers that require attestations (issue 15): production's trust policy, set with
// `apx trust require`, asks for provenance from builder X, an SBOM without a denied
// component and a compiler floor. A production worker (trust repository mode) loads the
// artifact that satisfies it all, and refuses, each with its reason code, security event and
// metric: one built by builder Y, one published without its provenance, one whose (validly
// signed) SBOM names a denied component, one whose provenance another key signed, and one
// whose SBOM names a component a signed CycloneDX VEX document lists as affected; then a VEX
// document naming a component of the artifact serving unloads it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileSigner, signStatement } from '@apx/sign';
import { ok, REPO } from './harness.js';
import { TrustFixture, type TrustRepo, type TrustWorker } from './trust-harness.js';

const BUILDER_X = 'https://builders.example/x';
const BUILDER_Y = 'https://builders.example/y';
const DENIED = 'pkg:npm/evil-lib';
const VERSIONS = '1.0.0,1.1.0,1.2.0,1.3.0,1.4.0,1.5.0,1.6.0';
const ATTESTATIONS = ['.sbom.sigstore.json', '.provenance.sigstore.json'];

describe('e2e: production requires attestations', () => {
  let f: TrustFixture;
  let r: TrustRepo;
  let w: TrustWorker;

  /** The payments sample as VERSION for production, signed with keys/KEY.key, built by BUILDER. */
  async function build(version: string, builder: string, key = 'signer'): Promise<string> {
    const yaml = readFileSync(join(REPO, 'configs', 'samples', 'payments-api.yaml'), 'utf8').replace(
      /version: 1\.0\.0/,
      `version: ${version}`,
    );
    const src = join(f.dir, 'src', `att-${version}-${key}.yaml`);
    writeFileSync(src, yaml);
    const out = `build/att-${key}-${version}`;
    ok(
      await f.apx(['compile', '--env', 'production', '--key', `keys/${key}.key`, '--out', out, src], { APX_BUILDER_ID: builder }),
    );
    return join(f.dir, out, `pb-pay-v1@${version}.wasm`);
  }

  /** Publishes an artifact with its signature, bundle and whatever attestations sit beside it, then approves it. */
  async function release(wasm: string): Promise<void> {
    r.publish(wasm);
    const name = wasm.split('/').pop() as string;
    for (const s of ATTESTATIONS) if (existsSync(`${wasm}${s}`)) cpSync(`${wasm}${s}`, r.path(`${name}${s}`));
    await r.approve(name.replace(/\.wasm$/, ''));
  }

  before(async () => {
    f = await TrustFixture.create();
    r = f.clone();
    ok(
      await r.trust([
        'require',
        '--env',
        'production',
        '--provenance',
        '--builder-id',
        BUILDER_X,
        '--compiler-min',
        '0.2.0',
        '--deny-component',
        DENIED,
      ]),
    );
    await release(await build('1.1.0', BUILDER_X));
    w = await r.worker({ ALLOWED_POLICY_VERSIONS: VERSIONS });
  });
  after(async () => {
    await f?.cleanup();
  });

  it('loads the artifact built by X with its SBOM and provenance', async () => {
    await w.loaded('pb-pay-v1@1.1.0');
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
  });

  it('apx trust status --json lists the attestation policy and, per approved artifact, its SBOM and provenance digests', async () => {
    const r1 = ok(await f.apx(['trust', 'status', '--env', 'production', '--json', '--store', r.store]));
    const status = JSON.parse(r1.stdout);
    assert.match(status.checkedAt, /^\d{4}-\d\d-\d\dT/);
    const [production] = status.environments;
    assert.deepEqual(production.attestationPolicy, {
      provenance: true,
      builderIds: [BUILDER_X],
      compilerMin: '0.2.0',
      denyComponents: [DENIED],
    });
    const byPath = new Map(production.approved.map((a: { path: string }) => [a.path, a]));
    const sha = (p: string) =>
      createHash('sha256')
        .update(readFileSync(r.path(p)))
        .digest('hex');
    assert.deepEqual((byPath.get('pb-pay-v1@1.1.0.wasm') as { sbom: unknown }).sbom, {
      name: 'pb-pay-v1@1.1.0.wasm.sbom.sigstore.json',
      sha256: sha('pb-pay-v1@1.1.0.wasm.sbom.sigstore.json'),
    });
    assert.equal(
      (byPath.get('pb-pay-v1@1.1.0.wasm') as { provenance: { sha256: string } }).provenance.sha256,
      sha('pb-pay-v1@1.1.0.wasm.provenance.sigstore.json'),
    );
    assert.equal((byPath.get('pb-pay-v1@1.0.0.wasm') as { sbom: unknown }).sbom, null);
  });

  it('apx trust require refuses what workers would refuse, in one line, and changes nothing', async () => {
    const bad = await r.trust(['require', '--env', 'production', '--deny-component', 'evil-lib']);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(
      bad.stderr,
      /^ERROR: invalid attestation policy from the command line: denyComponents\[0\] is not a package URL/,
    );
    const none = await r.trust(['require', '--env', 'production', '--none', '--sbom']);
    assert.equal(none.status, 2, none.stderr);
  });

  it('refuses an artifact built by builder Y: ATTESTATION_POLICY_VIOLATION naming the builder', async () => {
    const from = w.mark();
    await release(await build('1.2.0', BUILDER_Y));
    await w.expectLoadRefused('pb-pay-v1@1.2.0', 'ATTESTATION_POLICY_VIOLATION', {
      from,
      message:
        /^attestation policy violation in production: built by https:\/\/builders\.example\/y, not an allowed builder \[https:\/\/builders\.example\/x\]$/,
      securityEvent: 'attestation_policy_violation',
    });
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
    // apx verify gives the worker's answer, from the files beside the artifact.
    const verify = (version: string) =>
      f.apx([
        'verify',
        '--env',
        'production',
        '--trust-repository',
        r.store,
        '--trust-root',
        f.rootFile,
        '--allowed-versions',
        VERSIONS,
        r.path(`pb-pay-v1@${version}.wasm`),
      ]);
    ok(await verify('1.1.0'));
    const refused = await verify('1.2.0');
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /attestation policy violation in production: built by https:\/\/builders\.example\/y/);
  });

  it('refuses an artifact published without its provenance: ATTESTATION_MISSING', async () => {
    const wasm = await build('1.3.0', BUILDER_X);
    rmSync(`${wasm}.provenance.sigstore.json`);
    const from = w.mark();
    await release(wasm);
    await w.expectLoadRefused('pb-pay-v1@1.3.0', 'ATTESTATION_MISSING', {
      from,
      message: 'attestation missing: pb-pay-v1@1.3.0.wasm.provenance.sigstore.json (provenance required in production)',
      securityEvent: 'attestation_missing',
    });
    w.assertNotLoaded('pb-pay-v1@1.3.0');
  });

  it('refuses an artifact whose SBOM, signed by the trusted signer, names a denied component', async () => {
    const wasm = await build('1.4.0', BUILDER_X);
    const bundle = JSON.parse(readFileSync(`${wasm}.sbom.sigstore.json`, 'utf8'));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
    statement.predicate.components.push({ type: 'library', name: 'evil-lib', version: '6.6.6', purl: 'pkg:npm/evil-lib@6.6.6' });
    const signer = await FileSigner.open(f.key('signer'), async () => '', 'keys/signer.key');
    writeFileSync(`${wasm}.sbom.sigstore.json`, (await signStatement(signer, statement)).bundleJson);
    const from = w.mark();
    await release(wasm);
    await w.expectLoadRefused('pb-pay-v1@1.4.0', 'ATTESTATION_POLICY_VIOLATION', {
      from,
      message: 'attestation policy violation in production: the SBOM names pkg:npm/evil-lib@6.6.6, denied by pkg:npm/evil-lib',
      securityEvent: 'attestation_policy_violation',
    });
    w.assertNotLoaded('pb-pay-v1@1.4.0');
  });

  it('refuses an artifact whose provenance a key production does not trust signed: ATTESTATION_INVALID', async () => {
    const wasm = await build('1.5.0', BUILDER_X);
    // The same source and compiler give the same bytes: the other key's provenance names this artifact.
    const forged = await build('1.5.0', BUILDER_X, 'devsigner');
    cpSync(`${forged}.provenance.sigstore.json`, `${wasm}.provenance.sigstore.json`);
    const from = w.mark();
    await release(wasm);
    await w.expectLoadRefused('pb-pay-v1@1.5.0', 'ATTESTATION_INVALID', {
      from,
      message: /^attestation invalid: pb-pay-v1@1\.5\.0\.wasm\.provenance\.sigstore\.json: /,
      securityEvent: 'attestation_invalid',
    });
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
  });
  /** A CycloneDX VEX document: VULN affects PURL, not resolved. */
  function vex(id: string, purl: string): string {
    const file = join(f.dir, `vex-${id}.cdx.json`);
    writeFileSync(
      file,
      JSON.stringify({
        bomFormat: 'CycloneDX',
        specVersion: '1.6',
        version: 1,
        components: [{ type: 'library', 'bom-ref': 'affected', name: purl, purl }],
        vulnerabilities: [{ id, analysis: { state: 'exploitable' }, affects: [{ ref: 'affected' }] }],
      }),
    );
    return file;
  }

  it('refuses an artifact whose SBOM names a component a signed VEX document lists as affected: VULNERABLE_COMPONENT', async () => {
    const set = ok(await r.trust(['vex', '--env', 'production', vex('CVE-2026-0001', 'pkg:npm/leftpad-wasm@0.0.1')]));
    assert.match(
      set.stderr,
      /production refuses 1 affected component version\(s\): pkg:npm\/leftpad-wasm@0\.0\.1 \(CVE-2026-0001\)/,
    );
    const wasm = await build('1.6.0', BUILDER_X);
    const bundle = JSON.parse(readFileSync(`${wasm}.sbom.sigstore.json`, 'utf8'));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
    statement.predicate.components.push({
      type: 'library',
      name: 'leftpad-wasm',
      version: '0.0.1',
      purl: 'pkg:npm/leftpad-wasm@0.0.1',
    });
    const signer = await FileSigner.open(f.key('signer'), async () => '', 'keys/signer.key');
    writeFileSync(`${wasm}.sbom.sigstore.json`, (await signStatement(signer, statement)).bundleJson);
    const from = w.mark();
    await release(wasm);
    await w.expectLoadRefused('pb-pay-v1@1.6.0', 'VULNERABLE_COMPONENT', {
      from,
      message:
        'vulnerable component in production: the SBOM names pkg:npm/leftpad-wasm@0.0.1, affected by CVE-2026-0001 (VEX: exploitable)',
      securityEvent: 'vulnerable_component',
    });
    assert.equal(await w.serving(), 'pb-pay-v1@1.1.0');
  });

  it('a VEX document naming a component of the serving artifact unloads it', async () => {
    const wabt = (JSON.parse(readFileSync(join(REPO, 'node_modules', 'wabt', 'package.json'), 'utf8')) as { version: string })
      .version;
    const from = w.mark();
    ok(await r.trust(['vex', '--env', 'production', vex('APX-2026-0002', `pkg:npm/wabt@${wabt}`)]));
    const line = await w.waitFor(
      (l) => l.message.startsWith('policy unloaded: ') && l.policy_ref === 'pb-pay-v1@1.1.0',
      'the unload of pb-pay-v1@1.1.0',
      { from },
    );
    assert.deepEqual(
      [line.severity, line.reason, line.security_event],
      ['ERROR', 'VULNERABLE_COMPONENT', 'vulnerable_component'],
    );
    assert.match(
      line.message,
      new RegExp(`the SBOM names pkg:npm/wabt@${wabt.replace(/\./g, '\\.')}, affected by APX-2026-0002`),
    );
    assert.equal(await w.serving(), null);
  });
});
