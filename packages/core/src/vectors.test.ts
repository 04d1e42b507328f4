// The shared cosign vectors (../shared/vectors/cosign, see its README): real blobs,
// signatures and bundles, and the edge cases derived from them, with the outcomes the
// README gives. Skipped, with the reason printed, where the folder is absent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseBundle } from './bundle/parse.js';
import { verifyBundle } from './bundle/verify.js';
import { CoreErrorCode } from './error.js';
import { PublicKey } from './keys/public-key.js';
import { derEcdsaLength } from './signature/encoding.js';
import { verifyPrehashed } from './signature/prehashed.js';
import { SignatureVerifier } from './signature/verifier.js';
import { tempDir } from './testing/hygiene.js';

const VECTORS = resolve(process.env.APX_SHARED_DIR ?? resolve(process.cwd(), '..', 'shared'), 'vectors', 'cosign');
const skip = existsSync(VECTORS) ? false : `cosign vectors not found at ${VECTORS} (set APX_SHARED_DIR to the shared folder)`;
if (skip) console.log(`# SKIP ${skip}`);

const read = (p: string) => readFileSync(join(VECTORS, p));
const text = (p: string) => read(p).toString('utf8');
const verifierFor = (pubPath: string) => new SignatureVerifier(PublicKey.fromPem(text(pubPath), pubPath));

describe('cosign vectors: blobs/ (real cosign output)', { skip }, () => {
  it('verifies both real trudeplo signatures with the trudeplo key', () => {
    const v = verifierFor('blobs/trudeplo-cosign2.pub');
    v.verify(read('blobs/trudeplo-TestAgent2.bin'), read('blobs/trudeplo-TestAgent2.sig'));
    v.verify(read('blobs/trudeplo-TestAgent1.bin'), read('blobs/trudeplo-TestAgent1.sig'));
  });

  it('rejects a real signature over the other blob, and under the conformance key', () => {
    const v = verifierFor('blobs/trudeplo-cosign2.pub');
    assert.throws(() => v.verify(read('blobs/trudeplo-TestAgent1.bin'), read('blobs/trudeplo-TestAgent2.sig')), {
      code: CoreErrorCode.SIGNATURE_INVALID,
      message: 'signature verification failed: ECDSA signature verification failed',
    });
    const conf = verifierFor('blobs/conformance-managed-key.pub');
    assert.throws(() => conf.verify(read('blobs/trudeplo-TestAgent2.bin'), read('blobs/trudeplo-TestAgent2.sig')), {
      code: CoreErrorCode.SIGNATURE_INVALID,
    });
  });

  it('verifies the signatures extracted from the conformance bundles, including the high-S one', () => {
    const v = verifierFor('blobs/conformance-managed-key.pub');
    v.verify(read('blobs/conformance-a.txt.bin'), read('blobs/conformance-a.txt.prod.sig'));
    v.verify(read('blobs/conformance-a.txt.bin'), read('blobs/conformance-a.txt.staging-highS.sig'));
  });

  it('refuses the deliberately corrupted conformance key', () => {
    assert.throws(() => verifierFor('blobs/conformance-managed-key-wrong-key.pub'), { code: CoreErrorCode.PUBLIC_KEY_INVALID });
  });

  it('verifies the happy-path bundle offline by key, reporting its tlog entry as unchecked', () => {
    const result = verifyBundle(
      parseBundle(text('blobs/conformance-managed-key-happy-path.sigstore.json')),
      read('blobs/conformance-a.txt.bin'),
      verifierFor('blobs/conformance-managed-key.pub'),
    );
    assert.deepEqual(result, { format: 'sigstore', tlogEntriesVerified: 0, tlogEntriesUnchecked: 1 });
  });

  it('verifies the staging bundle with its trusted root, Rekor SET included', () => {
    const trustedRoot = JSON.parse(text('blobs/conformance-managed-key-staging.trusted_root.json'));
    const result = verifyBundle(
      parseBundle(text('blobs/conformance-managed-key-staging.sigstore.json')),
      read('blobs/conformance-a.txt.bin'),
      verifierFor('blobs/conformance-managed-key.pub'),
      { trustedRoot },
    );
    assert.equal(result.tlogEntriesVerified, 1);
  });

  it('rejects the production bundle against the staging trusted root (its timestamp authority is not trusted there)', () => {
    const trustedRoot = JSON.parse(text('blobs/conformance-managed-key-staging.trusted_root.json'));
    assert.throws(
      () =>
        verifyBundle(
          parseBundle(text('blobs/conformance-managed-key-happy-path.sigstore.json')),
          read('blobs/conformance-a.txt.bin'),
          verifierFor('blobs/conformance-managed-key.pub'),
          { trustedRoot },
        ),
      { code: CoreErrorCode.TIMESTAMP_INVALID, message: /^timestamp invalid: the RFC 3161 timestamp does not verify/ },
    );
  });

  it('rejects a conformance bundle over another blob with a digest mismatch', () => {
    assert.throws(
      () =>
        verifyBundle(
          parseBundle(text('blobs/conformance-managed-key-happy-path.sigstore.json')),
          read('blobs/trudeplo-TestAgent2.bin'),
          verifierFor('blobs/conformance-managed-key.pub'),
        ),
      { code: CoreErrorCode.BUNDLE_DIGEST_MISMATCH, message: /^bundle digest does not match the artifact: bundle has sha256:/ },
    );
  });

  it('hashedrekord body: APX parses its key and strict DER signature; openssl verifies it over the digest', () => {
    const body = JSON.parse(text('blobs/cosign-verify-test.hashedrekord-body.json'));
    const pem = Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
    const key = PublicKey.fromPem(pem);
    assert.equal(key.algorithm, 'ecdsa-p256');
    const sig = Buffer.from(body.spec.signature.content, 'base64');
    assert.equal(derEcdsaLength(sig), sig.length);
    // Node has no prehashed ECDSA verify, so the "verifies over the digest" outcome is
    // checked with an independent implementation (the blob itself is unknown).
    // APX's own prehashed verification (apx verify-blob sha256:<hex>) accepts it, and refuses another digest.
    const digest = Buffer.from(body.spec.data.hash.value, 'hex');
    assert.equal(verifyPrehashed(key.keyObject, 'sha256', digest, sig), 'valid');
    assert.equal(verifyPrehashed(key.keyObject, 'sha256', Buffer.alloc(32), sig), 'invalid');
    const openssl = spawnSync('openssl', ['version']);
    if (openssl.status !== 0) return;
    const dir = tempDir('apx-rekor-');
    writeFileSync(join(dir, 'pub.pem'), pem);
    writeFileSync(join(dir, 'digest.bin'), Buffer.from(body.spec.data.hash.value, 'hex'));
    writeFileSync(join(dir, 'sig.der'), sig);
    const r = spawnSync(
      'openssl',
      ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-in', 'digest.bin', '-sigfile', 'sig.der'],
      {
        cwd: dir,
      },
    );
    assert.equal(r.status, 0, r.stderr.toString());
  });
});

describe('cosign vectors: derived/ (edge cases)', { skip }, () => {
  const blob = () => read('blobs/trudeplo-TestAgent2.bin');
  const v = () => verifierFor('blobs/trudeplo-cosign2.pub');

  for (const name of ['b64-with-newline', 'raw-der', 'highS', 'p1363']) {
    it(`accepts trudeplo-TestAgent2.${name}.sig`, () => {
      v().verify(blob(), read(`derived/trudeplo-TestAgent2.${name}.sig`));
    });
  }

  it('rejects trudeplo-TestAgent2.trailing-zero-byte.sig, naming the trailing byte', () => {
    assert.throws(() => v().verify(blob(), read('derived/trudeplo-TestAgent2.trailing-zero-byte.sig')), {
      code: CoreErrorCode.SIGNATURE_MALFORMED,
      message: 'malformed signature: 1 trailing byte after the DER ECDSA signature',
    });
  });

  for (const name of ['legacy-bundle.v2-style.json', 'legacy-bundle.v3.1-style.json', 'offline.sigstore.json']) {
    it(`accepts the bundle trudeplo-TestAgent2.${name}`, () => {
      const parsed = parseBundle(text(`derived/trudeplo-TestAgent2.${name}`));
      const result = verifyBundle(parsed, blob(), v());
      assert.equal(result.tlogEntriesUnchecked, 0);
    });
  }

  it('rejects the offline bundle for another blob', () => {
    const parsed = parseBundle(text('derived/trudeplo-TestAgent2.offline.sigstore.json'));
    assert.throws(() => verifyBundle(parsed, read('blobs/trudeplo-TestAgent1.bin'), v()), {
      code: CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
    });
  });
});
