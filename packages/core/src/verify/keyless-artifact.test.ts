// The one verifier with keyless artifacts and with keys that have a validity window: a
// keyless artifact loads only for a trusted identity; a retired key's signature loads when a
// timestamp authority dated it inside the key's window, and not on the signer's word alone.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bindingStatement } from '../binding/statement.js';
import { CoreErrorCode } from '../error.js';
import { parseIdentityPolicy } from '../keyless/identity.js';
import { loadTrustedRoot, type SigstoreTrustedRoot } from '../keyless/trusted-root.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '../testing/keyless-fixtures.js';
import { bindingBundle, policyModule, signatureFile } from '../testing/policy-module.js';
import type { KeysTrust } from './input.js';
import { verifyPolicyArtifact } from './verify-policy-artifact.js';

const REF = { policyId: 'pb-pay-v1', version: '1.0.0' };
const BYTES = policyModule('pb-pay-v1', '1.0.0');
const statement = (signedAt: string) =>
  bindingStatement(BYTES, {
    policyId: REF.policyId,
    version: REF.version,
    environment: 'production',
    size: BYTES.byteLength,
    abiVersion: null,
    compilerVersion: 'test',
    sourceDigest: null,
    signedAt,
  });
const policy = { environment: 'production', strict: true, requireBinding: true };

describe('verifyPolicyArtifact: keyless artifacts and trusted time', () => {
  let svc: KeylessServices;
  let trustedRoot: SigstoreTrustedRoot;
  before(async () => {
    svc = await startKeylessServices();
    trustedRoot = loadTrustedRoot(trustedRootJson(svc), 'trusted_root.json');
  });
  after(async () => svc?.close());

  it('loads a keyless artifact signed by a trusted identity, and only that identity', async () => {
    const bundle = Buffer.from(await svc.sign(BYTES, { kind: 'dsse', statement: statement(new Date().toISOString()) }));
    const trusted: KeysTrust = {
      kind: 'keys',
      signers: [],
      identities: [parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subjectRegExp: '^https://github\\.com/acme/policies/.*$' })],
    };
    const verified = verifyPolicyArtifact({
      material: { ref: REF, artifact: BYTES, bundle },
      trust: trusted,
      policy: { ...policy, trustedRoot },
    });
    assert.equal(verified.identity, `${DEFAULT_SUBJECT} from ${DEFAULT_ISSUER}`);
    // What the certificate says, for holders that judge it again against later trust.
    assert.equal(verified.certificateIdentity?.subject, DEFAULT_SUBJECT);
    assert.equal(verified.certificateIdentity?.issuer, DEFAULT_ISSUER);
    assert.equal(verified.binding?.environment, 'production');

    const other: KeysTrust = {
      kind: 'keys',
      signers: [],
      identities: [
        parseIdentityPolicy({
          issuer: DEFAULT_ISSUER,
          subject: 'https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main',
        }),
      ],
    };
    assert.throws(
      () =>
        verifyPolicyArtifact({
          material: { ref: REF, artifact: BYTES, bundle },
          trust: other,
          policy: { ...policy, trustedRoot },
        }),
      { code: CoreErrorCode.IDENTITY_MISMATCH, message: /^certificate identity mismatch: / },
    );
    assert.throws(
      () =>
        verifyPolicyArtifact({
          material: { ref: REF, artifact: BYTES, bundle },
          trust: { kind: 'keys', signers: [] },
          policy: { ...policy, trustedRoot },
        }),
      { code: CoreErrorCode.NOT_APPROVED, message: /signed keylessly and the trust in force names no trusted identity/ },
    );
    // Without a trusted root the public-good one is used: the local services are not in it.
    assert.throws(
      () => verifyPolicyArtifact({ material: { ref: REF, artifact: BYTES, bundle }, trust: trusted, policy }),
      (err: { code?: string }) => err.code !== undefined && err.code !== CoreErrorCode.NOT_APPROVED,
    );
  });

  it("judges a retired key's window at the TSA's time, never at the signer's own signedAt", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = PublicKey.fromKeyObject(publicKey);
    const retiredAt = new Date(svc.clock.getTime() + 60_000);
    const trust: KeysTrust = {
      kind: 'keys',
      signers: [{ keyId: key.keyId, verifier: new SignatureVerifier(key), validity: { notAfter: retiredAt } }],
    };
    const now = () => new Date(svc.clock.getTime() + 7 * 86400_000); // a week after the retirement
    const signature = signatureFile(BYTES, privateKey);

    // Timestamped by the TSA while the key was valid: loads a week later.
    const stamped = Buffer.from(
      await svc.signWithKey(BYTES, privateKey, { kind: 'dsse', tlog: false, statement: statement(svc.clock.toISOString()) }),
    );
    const ok = verifyPolicyArtifact({
      material: { ref: REF, artifact: BYTES, signature, bundle: stamped },
      trust,
      policy: { ...policy, trustedRoot, now },
    });
    assert.equal(ok.keyId, key.keyId);

    // Signed a week later, back-dated by the signer's own claim (signedAt inside the window),
    // with no timestamp: refused.
    const backdated = bindingBundle(BYTES, { ...REF, environment: 'production', signedAt: svc.clock.toISOString() }, privateKey);
    assert.throws(
      () =>
        verifyPolicyArtifact({
          material: { ref: REF, artifact: BYTES, signature, bundle: backdated },
          trust,
          policy: { ...policy, trustedRoot, now },
        }),
      {
        code: CoreErrorCode.KEY_OUTSIDE_VALIDITY,
        message: new RegExp(`^signing key ${key.keyId} is outside its validity window .* no trusted timestamp`),
      },
    );
    // The timestamped bundle without a trusted root to check its timestamp: no trusted time, refused.
    assert.throws(
      () =>
        verifyPolicyArtifact({
          material: { ref: REF, artifact: BYTES, signature, bundle: stamped },
          trust,
          policy: { ...policy, now },
        }),
      { code: CoreErrorCode.KEY_OUTSIDE_VALIDITY },
    );
    // A .sig alone, the key still valid now: loads.
    verifyPolicyArtifact({
      material: { ref: REF, artifact: BYTES, signature },
      trust,
      policy: { environment: 'dev', strict: true, requireBinding: false, now: () => svc.clock },
    });
  });
});
