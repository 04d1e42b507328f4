// Keyless signing and trusted time through the real CLI (separate processes), against local
// Fulcio, Rekor, TSA and OIDC issuer on loopback; bundles checked with @sigstore/verify.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PublicKey } from '@apx/core';
import { toolMissing } from '@apx/core/testing/tools';
import { independentVerify, type SigstoreServices, startSigstoreServices } from '@apx/sign/testing/sigstore-services';
import { apx, apxAsync, ok, REPO, scratchDir } from './harness.js';

const IDENTITY = 'https://github.com/acme/policies/.github/workflows/release.yml@refs/heads/main';
const noOpenssl = toolMissing('openssl');

describe('keyless signing through the real CLI', () => {
  let services: SigstoreServices;
  let dir: string;
  let urls: string[];
  // No ambient identity from the machine running the tests.
  const clean = {
    SIGSTORE_ID_TOKEN: undefined,
    ACTIONS_ID_TOKEN_REQUEST_URL: undefined,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined,
    GITHUB_ACTIONS: undefined,
  };

  before(async () => {
    services = await startSigstoreServices();
    dir = scratchDir('apx-keyless-');
    ok(apx(dir, ['generate-key-pair']));
    writeFileSync(join(dir, 'blob.txt'), 'a blob to sign\n');
    copyFileSync(join(REPO, 'configs/samples/payments-api.yaml'), join(dir, 'payments.yaml'));
    urls = ['--fulcio-url', services.fulcioUrl, '--rekor-url', services.rekorUrl];
  });
  after(() => services?.close());

  const auditLines = () =>
    readFileSync(join(dir, 'keys/audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('sign-blob --keyless --identity-token: signature, certificate, bundle that @sigstore/verify accepts; audit names the identity', async () => {
    const r = await apxAsync(
      dir,
      [
        'sign-blob',
        '--keyless',
        '--identity-token',
        services.token(IDENTITY),
        ...urls,
        '--timestamp-server-url',
        services.tsaUrl,
        '--output-signature',
        'blob.sig',
        '--output-certificate',
        'blob.pem',
        '--bundle',
        'blob.sigstore.json',
        'blob.txt',
      ],
      clean,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`Signed keylessly as ${IDENTITY.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(issuer ${services.issuer}\\)`),
    );
    assert.match(r.stderr, /tlog entry created with index: \d+/);
    assert.match(readFileSync(join(dir, 'blob.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----\n/);
    assert.match(readFileSync(join(dir, 'blob.sig'), 'utf8'), /^[A-Za-z0-9+/]+=*$/);
    const bundleJson = readFileSync(join(dir, 'blob.sigstore.json'), 'utf8');
    const artifact = readFileSync(join(dir, 'blob.txt'));
    const { identity } = independentVerify(bundleJson, services.trustedRootJson, { artifact, timestampThreshold: 2 });
    assert.deepEqual(identity, { subjectAlternativeName: IDENTITY, issuer: services.issuer });
    const last = auditLines().at(-1) as Record<string, unknown>;
    assert.equal(last.operation, 'sign-blob');
    assert.deepEqual(last.identity, { subject: IDENTITY, issuer: services.issuer });
    assert.equal(last.key_id, undefined);
    assert.equal(last.digest, `sha256:${createHash('sha256').update(artifact).digest('hex')}`);
  });

  it('compile --keyless with SIGSTORE_ID_TOKEN: .wasm.sig, .wasm.pem and a DSSE bundle with the certificate and a Rekor entry', async () => {
    const r = await apxAsync(dir, ['compile', '--out', 'build', '--keyless', ...urls, 'payments.yaml'], {
      ...clean,
      SIGSTORE_ID_TOKEN: services.token(IDENTITY),
    });
    assert.equal(r.status, 0, r.stderr);
    const wasm = join(dir, 'build', 'pb-pay-v1@1.0.0.wasm');
    for (const suffix of ['', '.sig', '.pem', '.sigstore.json']) assert.ok(existsSync(`${wasm}${suffix}`), suffix);
    const bundleJson = readFileSync(`${wasm}.sigstore.json`, 'utf8');
    const bundle = JSON.parse(bundleJson);
    assert.ok(bundle.verificationMaterial.certificate);
    assert.equal(bundle.verificationMaterial.tlogEntries[0].kindVersion.kind, 'dsse');
    const { identity } = independentVerify(bundleJson, services.trustedRootJson);
    assert.equal(identity?.subjectAlternativeName, IDENTITY);
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
    assert.equal(statement.subject[0].digest.sha256, createHash('sha256').update(readFileSync(wasm)).digest('hex'));
    assert.deepEqual((auditLines().at(-1) as Record<string, unknown>).identity, { subject: IDENTITY, issuer: services.issuer });
  });

  it("sign --keyless with GitHub Actions' ambient token (audience sigstore) and the openssl TSA", {
    skip: noOpenssl,
  }, async () => {
    const wasm = join(dir, 'build', 'pb-pay-v1@1.0.0.wasm');
    const r = await apxAsync(
      dir,
      [
        'sign',
        wasm,
        '--version',
        '1.0.0',
        '--env',
        'production',
        '--keyless',
        ...urls,
        '--timestamp-server-url',
        services.opensslTsaUrl as string,
      ],
      {
        ...clean,
        ACTIONS_ID_TOKEN_REQUEST_URL: services.actions.requestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: services.actions.requestToken,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Using the GitHub Actions identity token/);
    const bundleJson = readFileSync(`${wasm}.sigstore.json`, 'utf8');
    const { identity } = independentVerify(bundleJson, services.trustedRootJson, { timestampThreshold: 2 });
    assert.deepEqual(identity, { subjectAlternativeName: services.actions.identity, issuer: services.issuer });
    const statement = JSON.parse(Buffer.from(JSON.parse(bundleJson).dsseEnvelope.payload, 'base64').toString('utf8'));
    assert.equal(JSON.stringify(statement).includes('production'), true);
  });

  it('keyed sign-blob and sign with --timestamp-server-url (openssl TSA): a verifiable RFC 3161 timestamp, no Rekor', {
    skip: noOpenssl,
  }, async () => {
    const before = services.requests.rekor;
    const r = await apxAsync(
      dir,
      ['sign-blob', '--timestamp-server-url', services.opensslTsaUrl as string, '--bundle', 'keyed.sigstore.json', 'blob.txt'],
      clean,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Signed with key id [0-9a-f]{64}/);
    assert.match(r.stderr, /Timestamped by a timestamp authority \(RFC 3161\)/);
    const pub = PublicKey.fromPem(readFileSync(join(dir, 'keys/cosign.pub'), 'utf8'));
    const keys = (end?: Date) => ({
      [pub.keyId]: { spkiDer: pub.spkiDer, validFor: { start: new Date(0), ...(end ? { end } : {}) } },
    });
    const bundleJson = readFileSync(join(dir, 'keyed.sigstore.json'), 'utf8');
    const artifact = readFileSync(join(dir, 'blob.txt'));
    independentVerify(bundleJson, services.trustedRootJson, { artifact, tlogThreshold: 0, keys: keys() });
    // A key retired before the trusted time does not verify.
    assert.throws(
      () =>
        independentVerify(bundleJson, services.trustedRootJson, {
          artifact,
          tlogThreshold: 0,
          keys: keys(new Date(Date.now() - 3_600_000)),
        }),
      {
        code: 'PUBLIC_KEY_ERROR',
      },
    );

    const wasm = join(dir, 'build', 'pb-pay-v1@1.0.0.wasm');
    const s = await apxAsync(
      dir,
      ['sign', wasm, '--version', '1.0.0', '--timestamp-server-url', services.opensslTsaUrl as string],
      clean,
    );
    assert.equal(s.status, 0, s.stderr);
    // The keyless run above left wasm.pem; a keyed re-sign removes it (it would name the wrong signer).
    assert.equal(existsSync(`${wasm}.pem`), false);
    const artifactBundle = readFileSync(`${wasm}.sigstore.json`, 'utf8');
    assert.equal(JSON.parse(artifactBundle).verificationMaterial.publicKey.hint, pub.keyId);
    independentVerify(artifactBundle, services.trustedRootJson, { tlogThreshold: 0, keys: keys() });
    assert.equal(services.requests.rekor, before);
  });

  it('no identity token: one line with a hint, exit 1, nothing written', async () => {
    const r = await apxAsync(dir, ['sign-blob', '--keyless', ...urls, '--bundle', 'none.json', 'blob.txt'], clean);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      'ERROR: no identity token for keyless signing; pass --identity-token TOKEN, set SIGSTORE_ID_TOKEN, or run in GitHub Actions with `permissions: id-token: write`\n',
    );
    assert.equal(existsSync(join(dir, 'none.json')), false);
    const typo = await apxAsync(dir, ['sign-blob', '--identity-token', 'no-such-token-file', ...urls, 'blob.txt'], clean);
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /^ERROR: invalid identity token: --identity-token is neither a JWT nor a file;/);
  });

  it('Fulcio refusing the token, and Rekor unreachable: one line each, naming the service', async () => {
    const parts = services.token(IDENTITY).split('.');
    const forged = `${parts[0]}.${parts[1]}.${Buffer.alloc(64, 7).toString('base64url')}`;
    const refused = await apxAsync(dir, ['sign-blob', '--identity-token', forged, ...urls, 'blob.txt'], clean);
    assert.equal(refused.status, 1);
    assert.match(
      refused.stderr,
      /^ERROR: Fulcio at http:\/\/127\.0\.0\.1:\d+ issued no certificate: HTTP \(401\) There was an error processing the identity token; the identity token was refused[^\n]*\n$/,
    );

    const other = await startSigstoreServices({ openssl: false });
    const deadRekor = other.rekorUrl;
    await other.close();
    const unreachable = await apxAsync(
      dir,
      [
        'sign-blob',
        '--identity-token',
        services.token(IDENTITY),
        '--fulcio-url',
        services.fulcioUrl,
        '--rekor-url',
        deadRekor,
        'blob.txt',
      ],
      clean,
    );
    assert.equal(unreachable.status, 1);
    assert.equal(
      unreachable.stderr,
      `ERROR: Rekor at ${deadRekor} did not log the signature: connection refused; check --rekor-url (or the signing config) and that Rekor is reachable; nothing was written\n`,
    );
  });

  it('a signing config names the services; flags mixing keyed and keyless are usage errors', async () => {
    writeFileSync(
      join(dir, 'signing_config.json'),
      JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
        caUrls: [{ url: services.fulcioUrl, majorApiVersion: 1, validFor: { start: '2020-01-01T00:00:00Z' } }],
        rekorTlogUrls: [{ url: services.rekorUrl, majorApiVersion: 1, validFor: { start: '2020-01-01T00:00:00Z' } }],
        tsaUrls: [{ url: services.tsaUrl, majorApiVersion: 1, validFor: { start: '2020-01-01T00:00:00Z' } }],
      }),
    );
    // The token from a file (cosign accepts the token or a path to it).
    writeFileSync(join(dir, 'token.jwt'), `${services.token(IDENTITY)}\n`);
    const r = await apxAsync(
      dir,
      [
        'sign-blob',
        '--identity-token',
        'token.jwt',
        '--signing-config',
        'signing_config.json',
        '--bundle',
        'cfg.sigstore.json',
        'blob.txt',
      ],
      clean,
    );
    assert.equal(r.status, 0, r.stderr);
    const cfgBundle = readFileSync(join(dir, 'cfg.sigstore.json'), 'utf8');
    assert.equal(JSON.parse(cfgBundle).verificationMaterial.timestampVerificationData.rfc3161Timestamps.length, 1);
    const { identity } = independentVerify(cfgBundle, services.trustedRootJson, {
      artifact: readFileSync(join(dir, 'blob.txt')),
    });
    assert.equal(identity?.subjectAlternativeName, IDENTITY);

    const both = apx(dir, ['sign-blob', '--key', 'keys/cosign.key', '--keyless', 'blob.txt'], clean);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /^ERROR: --key and --keyless \(or --identity-token\) exclude each other;/);
    const rekorOnly = apx(dir, ['sign-blob', '--rekor-url', services.rekorUrl, 'blob.txt'], clean);
    assert.equal(rekorOnly.status, 2);
    assert.match(rekorOnly.stderr, /^ERROR: --rekor-url is for keyless signing: add --keyless;/);
  });
});
