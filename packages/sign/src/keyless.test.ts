import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { TSAWitness } from '@sigstore/sign';
import { signBlob } from './blob.js';
import { SignErrorCode } from './error.js';
import { checkIdentityToken, KeylessSigner, rekorWitness } from './keyless.js';
import { FileSigner } from './signer/file-signer.js';
import { signingServicesFromConfig } from './signing-config.js';
import {
  independentVerify,
  keylessArtifactBundle,
  keylessBlobBundle,
  type SigstoreServices,
  startSigstoreServices,
} from './testing/sigstore-services.js';
import { TimestampWitness } from './timestamp.js';

const blob = Buffer.from('\0asm\x01\0\0\0 a policy');
const IDENTITY = 'https://github.com/acme/policies/.github/workflows/release.yml@refs/heads/main';
const noOpenssl = toolMissing('openssl');

describe('keyless signing against local Sigstore services (loopback HTTP)', () => {
  let services: SigstoreServices;
  before(async () => {
    services = await startSigstoreServices();
  });
  after(() => services?.close());

  it('a keyless blob bundle (Fulcio certificate, Rekor entry) verifies with @sigstore/verify and names the identity', async () => {
    const fx = await keylessBlobBundle(services, blob, { identity: IDENTITY });
    const bundle = JSON.parse(fx.bundleJson);
    assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.ok(bundle.verificationMaterial.certificate.rawBytes);
    assert.equal(bundle.verificationMaterial.tlogEntries.length, 1);
    assert.match(fx.certificatePem, /^-----BEGIN CERTIFICATE-----\n/);
    assert.deepEqual(fx.identity, { subject: IDENTITY, issuer: services.issuer });
    const { identity } = independentVerify(fx.bundleJson, fx.trustedRootJson, { artifact: blob });
    assert.deepEqual(identity, { subjectAlternativeName: IDENTITY, issuer: services.issuer });
    const tampered = Buffer.from(blob);
    tampered[9] = 0x41;
    assert.throws(() => independentVerify(fx.bundleJson, fx.trustedRootJson, { artifact: tampered }), { code: /ERROR$/ });
  });

  it('a keyless DSSE artifact bundle verifies, with the SET and a mock-TSA timestamp (two trusted times)', async () => {
    const fx = await keylessArtifactBundle(
      services,
      blob,
      {
        policyId: 'pb-pay-v1',
        version: '1.0.0',
        environment: 'production',
        abiVersion: null,
        compilerVersion: null,
        sourceDigest: null,
      },
      { identity: IDENTITY, timestamp: 'mock' },
    );
    const bundle = JSON.parse(fx.bundleJson);
    assert.equal(bundle.dsseEnvelope.payloadType, 'application/vnd.in-toto+json');
    assert.equal(bundle.verificationMaterial.timestampVerificationData.rfc3161Timestamps.length, 1);
    const { identity } = independentVerify(fx.bundleJson, fx.trustedRootJson, { timestampThreshold: 2 });
    assert.equal(identity?.subjectAlternativeName, IDENTITY);
  });

  it('a keyless bundle timestamped by the openssl TSA verifies', { skip: noOpenssl }, async () => {
    const fx = await keylessBlobBundle(services, blob, { identity: IDENTITY, timestamp: 'openssl' });
    independentVerify(fx.bundleJson, fx.trustedRootJson, { artifact: blob, timestampThreshold: 2 });
    assert.equal(services.requests.opensslTsa > 0, true);
  });

  it('a foreign trusted root refuses the bundle', async () => {
    const other = await startSigstoreServices({ openssl: false });
    try {
      const fx = await keylessBlobBundle(services, blob, { identity: IDENTITY });
      assert.throws(() => independentVerify(fx.bundleJson, other.trustedRootJson, { artifact: blob }), { code: /ERROR$/ });
    } finally {
      await other.close();
    }
  });

  it('certificates that must fail: no SCT, expired at the signing time', async () => {
    for (const [options, code, message] of [
      [{ fulcioWithoutSct: true }, 'CERTIFICATE_ERROR', /SCT/i],
      [{ fulcioClockOffsetMs: -3_600_000 }, 'CERTIFICATE_ERROR', /certificate chain/i],
    ] as const) {
      const bad = await startSigstoreServices({ openssl: false, ...options });
      try {
        const fx = await keylessBlobBundle(bad, blob, { identity: IDENTITY });
        assert.throws(
          () => independentVerify(fx.bundleJson, fx.trustedRootJson, { artifact: blob }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, code, err.message);
            assert.match(err.message, message);
            return true;
          },
        );
      } finally {
        await bad.close();
      }
    }
  });

  it('keyed signing with an openssl RFC 3161 timestamp: the key window is judged at the TSA time', {
    skip: noOpenssl,
  }, async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = new FileSigner('test-key', privateKey);
    const out = await signBlob(signer, blob, { witnesses: [new TimestampWitness({ url: services.opensslTsaUrl as string })] });
    const bundle = JSON.parse(out.bundleJson);
    assert.equal(bundle.verificationMaterial.publicKey.hint, out.publicKey.keyId);
    assert.equal(bundle.verificationMaterial.timestampVerificationData.rfc3161Timestamps.length, 1);
    const key = (validFor: { start: Date; end?: Date }) => ({
      [out.publicKey.keyId]: { spkiDer: out.publicKey.spkiDer, validFor },
    });
    // One trusted time is required (the default threshold), and the TSA's is the only one.
    independentVerify(out.bundleJson, services.trustedRootJson, {
      artifact: blob,
      tlogThreshold: 0,
      keys: key({ start: new Date(0) }),
    });
    assert.throws(
      () =>
        independentVerify(out.bundleJson, services.trustedRootJson, {
          artifact: blob,
          tlogThreshold: 0,
          keys: key({ start: new Date(0), end: new Date(Date.now() - 3_600_000) }),
        }),
      { code: 'PUBLIC_KEY_ERROR' },
    );
  });

  it('the openssl TSA also answers Sigstore JSON requests (@sigstore/sign TSAWitness)', { skip: noOpenssl }, async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const out = await signBlob(new FileSigner('k', privateKey), blob, {
      witnesses: [new TSAWitness({ tsaBaseURL: services.opensslTsaUrl as string })],
    });
    const keys = { [out.publicKey.keyId]: { spkiDer: out.publicKey.spkiDer, validFor: { start: new Date(0) } } };
    independentVerify(out.bundleJson, services.trustedRootJson, { artifact: blob, tlogThreshold: 0, keys });
  });

  it('Fulcio refuses a token its issuer did not sign: one line, CERTIFICATE_REFUSED', async () => {
    const good = services.token(IDENTITY).split('.');
    const forged = `${good[0]}.${good[1]}.${Buffer.alloc(64, 1).toString('base64url')}`;
    const signer = new KeylessSigner({ fulcioUrl: services.fulcioUrl, identityToken: async () => forged });
    await assert.rejects(signBlob(signer, blob), (err: Error & { code?: string; hint?: string }) => {
      assert.equal(err.code, SignErrorCode.CERTIFICATE_REFUSED);
      assert.match(
        err.message,
        /^Fulcio at http:\/\/127\.0\.0\.1:\d+ issued no certificate: HTTP \(401\) There was an error processing the identity token$/,
      );
      assert.match(err.hint ?? '', /identity token was refused/);
      return true;
    });
  });

  it('an expired or malformed token is refused before any request', async () => {
    const before = services.requests.fulcio;
    const expired = services.token(IDENTITY, { expiresInSeconds: -60 });
    const signer = new KeylessSigner({ fulcioUrl: services.fulcioUrl, identityToken: async () => expired });
    await assert.rejects(signBlob(signer, blob), {
      code: SignErrorCode.IDENTITY_TOKEN_INVALID,
      message: /^invalid identity token: expired at /,
    });
    assert.throws(() => checkIdentityToken('not-a-jwt'), { code: SignErrorCode.IDENTITY_TOKEN_INVALID });
    // An email claim must be verified by the issuer (what Fulcio's clients require).
    const unverified = services.token(IDENTITY, { claims: { email: 'alice@example.com' } });
    const signer2 = new KeylessSigner({ fulcioUrl: services.fulcioUrl, identityToken: async () => unverified });
    await assert.rejects(signBlob(signer2, blob), {
      code: SignErrorCode.IDENTITY_TOKEN_INVALID,
      message: 'invalid identity token: JWT email not verified by issuer',
    });
    assert.equal(services.requests.fulcio, before);
  });

  it('an unreachable Rekor is one line, TLOG_FAILED, naming the URL', async () => {
    const other = await startSigstoreServices({ openssl: false });
    const deadRekor = other.rekorUrl;
    await other.close();
    const signer = new KeylessSigner({ fulcioUrl: services.fulcioUrl, identityToken: async () => services.token(IDENTITY) });
    await assert.rejects(signBlob(signer, blob, { witnesses: [rekorWitness(deadRekor)] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, SignErrorCode.TLOG_FAILED);
      assert.equal(err.message, `Rekor at ${deadRekor} did not log the signature: connection refused`);
      return true;
    });
  });

  it('an unreachable TSA is one line, TIMESTAMP_FAILED', async () => {
    const other = await startSigstoreServices({ openssl: false });
    const deadTsa = other.tsaUrl;
    await other.close();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const witness = new TimestampWitness({ url: deadTsa });
    await assert.rejects(signBlob(new FileSigner('k', privateKey), blob, { witnesses: [witness] }), {
      code: SignErrorCode.TIMESTAMP_FAILED,
      message: `timestamp request to ${deadTsa} failed: connection refused`,
    });
  });
});

describe('signing config', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const config = (extra: Record<string, unknown>) =>
    JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json', ...extra });

  it('picks the newest valid Fulcio, prefers Rekor v1, and skips an expired TSA', () => {
    const services = signingServicesFromConfig(
      config({
        caUrls: [
          { url: 'https://old.example', majorApiVersion: 1, validFor: { start: '2023-01-01T00:00:00Z' } },
          { url: 'https://new.example', majorApiVersion: 1, validFor: { start: '2025-01-01T00:00:00Z' } },
          { url: 'https://future.example', majorApiVersion: 1, validFor: { start: '2027-01-01T00:00:00Z' } },
        ],
        rekorTlogUrls: [
          { url: 'https://rekor-v2.example', majorApiVersion: 2, validFor: { start: '2025-01-01T00:00:00Z' } },
          { url: 'https://rekor.example', majorApiVersion: 1, validFor: { start: '2021-01-01T00:00:00Z' } },
        ],
        tsaUrls: [
          {
            url: 'https://tsa.example/api/v1/timestamp',
            majorApiVersion: 1,
            validFor: { start: '2025-01-01T00:00:00Z', end: '2026-01-01T00:00:00Z' },
          },
        ],
      }),
      'config.json',
      now,
    );
    assert.deepEqual(services, { fulcioUrl: 'https://new.example', rekorUrl: 'https://rekor.example', rekorApiVersion: 1 });
  });

  it('refuses what is not a signing config, with the file named', () => {
    assert.throws(() => signingServicesFromConfig('{}', 'x.json'), {
      code: SignErrorCode.SIGNING_CONFIG_INVALID,
      message: /^signing config x\.json is not usable: mediaType/,
    });
    assert.throws(() => signingServicesFromConfig('nope', 'x.json'), { message: /not JSON/ });
  });
});
