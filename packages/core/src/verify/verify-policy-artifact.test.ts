import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { assertVerifiedArtifact, isVerifiedArtifact, type VerifiedArtifact } from '../artifact/verified-artifact.js';
import { POLICY_PREDICATE_TYPE } from '../binding/statement.js';
import { IN_TOTO_STATEMENT_V1 } from '../bundle/verify.js';
import { sha256Hex } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { bindingBundle, policyModule, signatureFile, statementBundle } from '../testing/policy-module.js';
import { PolicyHost } from '../wasm/host.js';
import { keysTrust, type TrustInForce, type TufTrust, type VerificationInput, type VersionAllowList } from './input.js';
import { compareSemver } from './semver.js';
import { signatureMaterialDigest, verifyPolicyArtifact } from './verify-policy-artifact.js';

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signerKey = PublicKey.fromKeyObject(signer.publicKey);
const REF = { policyId: 'pb-pay-v1', version: '1.0.0' };
const BYTES = policyModule('pb-pay-v1', '1.0.0');
const keys: TrustInForce = keysTrust(new SignatureVerifier(signerKey));

/** The runbook's allow-list (the worker's AllowList has the same contract). */
function allowList(...versions: string[]): VersionAllowList {
  return {
    admits: (_id, version) => versions.includes(version),
    rejection: (_id, version) =>
      new VerificationError(
        CoreErrorCode.VERSION_NOT_ALLOWED,
        `policy version ${version} not in allowed list: [${versions.join(' ')}]`,
      ),
  };
}

interface Case {
  bytes?: Buffer;
  ref?: { policyId: string; version: string };
  signature?: Buffer | null;
  bundle?: Buffer | null;
  key?: KeyObject;
  environment?: string;
  trust?: TrustInForce;
  policy?: Partial<VerificationInput['policy']>;
  state?: VerificationInput['state'];
}

/** A production-like verification of BYTES as REF, signed and bound; each field overridable. */
function run(c: Case = {}): VerifiedArtifact {
  const bytes = c.bytes ?? BYTES;
  const ref = c.ref ?? REF;
  const environment = c.environment ?? 'production';
  const key = c.key ?? signer.privateKey;
  const signature = c.signature === null ? undefined : (c.signature ?? signatureFile(bytes, key));
  const bundle =
    c.bundle === null
      ? undefined
      : (c.bundle ?? bindingBundle(bytes, { policyId: ref.policyId, version: ref.version, environment }, key));
  return verifyPolicyArtifact({
    material: { ref, artifact: bytes, signature, bundle },
    trust: c.trust ?? keys,
    policy: { environment, strict: true, requireBinding: true, ...c.policy },
    ...(c.state ? { state: c.state } : {}),
  });
}

function refuses(c: Case, code: CoreErrorCode, message?: string | RegExp): VerificationError {
  let caught: unknown;
  assert.throws(
    () => run(c),
    (err: unknown) => {
      caught = err;
      return true;
    },
  );
  assert.ok(caught instanceof VerificationError, `a VerificationError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else if (message) assert.match(caught.message, message);
  return caught;
}

const statement = (subject: unknown[], predicate: Record<string, unknown> = {}) => ({
  _type: IN_TOTO_STATEMENT_V1,
  subject,
  predicateType: POLICY_PREDICATE_TYPE,
  predicate: {
    policyId: 'pb-pay-v1',
    version: '1.0.0',
    environment: 'production',
    size: BYTES.length,
    abiVersion: 1,
    compilerVersion: 'test',
    sourceDigest: null,
    signedAt: new Date().toISOString(),
    ...predicate,
  },
});

describe('verifyPolicyArtifact: a genuine artifact', () => {
  it('returns a frozen, registered VerifiedArtifact with everything a consumer needs', () => {
    const now = new Date('2026-03-01T00:00:00Z');
    const verified = run({ policy: { now: () => now } });
    assert.deepEqual(verified.ref, REF);
    assert.equal(verified.digest, `sha256:${sha256Hex(BYTES)}`);
    assert.equal(verified.size, BYTES.length);
    assert.equal(verified.keyId, signerKey.keyId);
    assert.equal(verified.trust, 'keys');
    assert.deepEqual([verified.meta.policy, verified.meta.version], ['pb-pay-v1', '1.0.0']);
    assert.equal(verified.binding?.environment, 'production');
    assert.equal(verified.verifiedAt.getTime(), now.getTime());
    assert.ok(Object.isFrozen(verified) && Object.isFrozen(verified.tables) && Object.isFrozen(verified.tables.routes));
    assert.ok(isVerifiedArtifact(verified));
    assert.equal(PolicyHost.load(verified).decide({ method: 'GET', host: 'h', path: '/' }).effect, 'allow');
  });

  it('accepts an unsigned artifact only with strict mode off, as unsigned (keyId null)', () => {
    const verified = run({ signature: null, bundle: null, environment: 'dev', policy: { strict: false, requireBinding: false } });
    assert.equal(verified.keyId, null);
    assert.equal(verified.trust, 'unsigned');
    assert.equal(verified.binding, null);
  });

  it('checks the bundle against the digest of the bytes it compiles, and refuses bytes in shared memory', () => {
    // A statement signed by the trusted key about other bytes, beside a valid .sig of these.
    const others = policyModule('pb-pay-v1', '1.0.1');
    const elsewhere = bindingBundle(others, { ...REF, environment: 'production' }, signer.privateKey);
    refuses({ bundle: elsewhere }, CoreErrorCode.BUNDLE_DIGEST_MISMATCH, /does not match the artifact/);
    // Another thread could change shared bytes between the hash and the compile.
    const shared = new Uint8Array(new SharedArrayBuffer(BYTES.length));
    shared.set(BYTES);
    assert.throws(() => run({ bytes: shared as unknown as Buffer }), /the artifact is in shared memory/);
  });
});

describe('verifyPolicyArtifact: each check', () => {
  it('1. refuses a malformed reference', () => {
    refuses({ ref: { policyId: 'PB PAY', version: '1.0.0' } }, CoreErrorCode.REF_INVALID);
    refuses({ ref: { policyId: 'pb-pay-v1', version: 'latest' } }, CoreErrorCode.REF_INVALID);
  });

  it("2. refuses a version outside the allow-list with the runbook's message", () => {
    refuses(
      { ref: { policyId: 'pb-pay-v1', version: '1.2.0' }, policy: { allowList: allowList('1.0.0', '1.1.0') } },
      CoreErrorCode.VERSION_NOT_ALLOWED,
      'policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]',
    );
    assert.equal(run({ policy: { allowList: allowList('1.0.0') } }).ref.version, '1.0.0');
  });

  it('3. refuses an artifact over the cap before hashing or verifying it', () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1);
    refuses(
      { bytes: big, signature: Buffer.from('junk'), bundle: null },
      CoreErrorCode.ARTIFACT_TOO_LARGE,
      'artifact too large: 10485761 bytes (max: 10485760)',
    );
    refuses(
      { policy: { maxBytes: 100 } },
      CoreErrorCode.ARTIFACT_TOO_LARGE,
      `artifact too large: ${BYTES.length} bytes (max: 100)`,
    );
  });

  it('5. refuses a blocked (digest, signature) pair, and only that pair', () => {
    const junk = signatureFile(BYTES, stranger.privateKey);
    const bundle = bindingBundle(BYTES, { ...REF, environment: 'production' }, signer.privateKey);
    const digest = `sha256:${sha256Hex(BYTES)}`;
    const blockedPairs = new Set([`${digest} ${signatureMaterialDigest(junk, bundle)}`]);
    const blocked = (d: string, s: string) => blockedPairs.has(`${d} ${s}`);
    refuses(
      { signature: junk, bundle, state: { blocked } },
      CoreErrorCode.DIGEST_BLOCKED,
      /^digest sha256:[0-9a-f]{64} is blocked/,
    );
    // The same bytes with their genuine signature are another pair.
    assert.equal(run({ bundle, state: { blocked } }).digest, digest);
  });

  it('6. TUF: refuses an artifact the environment did not approve, or whose length or hash differ', () => {
    const tuf = (target: { length: number; sha256: string } | undefined): TufTrust => ({
      kind: 'tuf',
      environment: 'production',
      target,
      signers: [{ keyId: signerKey.keyId, verifier: new SignatureVerifier(signerKey) }],
      namedVersions: new Set(),
    });
    refuses(
      { trust: tuf(undefined) },
      CoreErrorCode.NOT_APPROVED,
      /^not approved for production: pb-pay-v1@1\.0\.0 is not a target/,
    );
    refuses({ trust: tuf({ length: BYTES.length + 1, sha256: sha256Hex(BYTES) }) }, CoreErrorCode.TARGET_MISMATCH);
    refuses({ trust: tuf({ length: BYTES.length, sha256: '0'.repeat(64) }) }, CoreErrorCode.TARGET_MISMATCH);
    const verified = run({ trust: tuf({ length: BYTES.length, sha256: sha256Hex(BYTES) }) });
    assert.deepEqual([verified.trust, verified.keyId], ['tuf', signerKey.keyId]);
    refuses(
      { trust: { ...tuf({ length: BYTES.length, sha256: sha256Hex(BYTES) }), environment: 'staging' } },
      CoreErrorCode.NOT_APPROVED,
    );
  });

  it('7. refuses a version below the floor unless the operator or the targets role names it; an allow-list never does', () => {
    const floor = { floor: '1.1.0' };
    refuses(
      { state: floor, policy: { allowList: allowList('1.0.0', '1.1.0') } },
      CoreErrorCode.ROLLBACK_REFUSED,
      'rollback refused: pb-pay-v1@1.0.0 is older than 1.1.0, the highest version verified for pb-pay-v1',
    );
    assert.equal(run({ state: { ...floor, allowRollback: true } }).ref.version, '1.0.0');
    assert.equal(run({ state: { floor: '1.0.0' } }).ref.version, '1.0.0');
    assert.equal(run({ state: { floor: '1.0.0-rc.1' } }).ref.version, '1.0.0');
    const named: TufTrust = {
      kind: 'tuf',
      environment: 'production',
      target: { length: BYTES.length, sha256: sha256Hex(BYTES) },
      signers: [{ keyId: signerKey.keyId, verifier: new SignatureVerifier(signerKey) }],
      namedVersions: new Set(['1.0.0']),
    };
    assert.equal(run({ trust: named, state: floor }).trust, 'tuf');
    refuses({ trust: { ...named, namedVersions: new Set(['0.9.0']) }, state: floor }, CoreErrorCode.ROLLBACK_REFUSED);
  });

  it("8. refuses an unsigned artifact in strict mode with the runbook's message", () => {
    refuses(
      { signature: null },
      CoreErrorCode.SIGNATURE_MISSING,
      'signature file not found: pb-pay-v1@1.0.0.wasm.sig (strict mode enabled)',
    );
  });

  it("9. refuses a signature by an untrusted key, or over other bytes, with the runbook's message; it blocks the pair", () => {
    const err = refuses(
      { signature: signatureFile(BYTES, stranger.privateKey) },
      CoreErrorCode.SIGNATURE_INVALID,
      'signature verification failed: ECDSA signature verification failed',
    );
    assert.equal(err.blocksPair, true);
    const malformed = refuses({ signature: Buffer.from('not a signature') }, CoreErrorCode.SIGNATURE_MALFORMED);
    assert.equal(malformed.blocksPair, true);
    const tampered = Buffer.from(BYTES);
    tampered.writeUInt8((tampered.at(-3) ?? 0) ^ 1, tampered.length - 3);
    refuses({ bytes: tampered, signature: signatureFile(BYTES, signer.privateKey) }, CoreErrorCode.SIGNATURE_INVALID);
  });

  it('10. requires a binding when asked, and checks it whenever present', () => {
    refuses(
      { bundle: null },
      CoreErrorCode.BINDING_MISSING,
      'signed binding not found: pb-pay-v1@1.0.0.wasm.sigstore.json (required in production)',
    );
    assert.equal(run({ bundle: null, environment: 'dev', policy: { requireBinding: false } }).binding, null);
    const staging = bindingBundle(BYTES, { ...REF, environment: 'staging' }, signer.privateKey);
    refuses(
      { bundle: staging },
      CoreErrorCode.BINDING_MISMATCH,
      'signed binding mismatch: artifact is signed for environment staging, this worker runs production',
    );
    // In dev the environment is not required, but a present binding must still name the artifact.
    const other = bindingBundle(BYTES, { policyId: 'pb-pay-v1', version: '1.1.0', environment: 'dev' }, signer.privateKey);
    refuses(
      { bundle: other, environment: 'dev', policy: { requireBinding: false } },
      CoreErrorCode.BINDING_MISMATCH,
      'signed binding mismatch: artifact is signed as pb-pay-v1@1.1.0, loaded as pb-pay-v1@1.0.0',
    );
    // The bundle must be signed by the key whose .sig verified.
    const byStranger = bindingBundle(BYTES, { ...REF, environment: 'production' }, stranger.privateKey);
    refuses({ bundle: byStranger }, CoreErrorCode.SIGNATURE_INVALID);
  });

  it('10. refuses a statement with two subjects where the digest-matching one names another version', () => {
    const digest = { sha256: sha256Hex(BYTES) };
    const s = statement(
      [
        { name: 'pb-pay-v1@0.9.0', digest },
        { name: 'pb-pay-v1@1.0.0', digest: { sha256: '0'.repeat(64) } },
      ],
      { version: '1.0.0' },
    );
    refuses(
      { bundle: statementBundle(s, signer.privateKey) },
      CoreErrorCode.BINDING_MISMATCH,
      'signed binding mismatch: the statement names 2 subjects; an APX binding names exactly one',
    );
  });

  it('10. refuses a second subject even when it is harmless', () => {
    const digest = { sha256: sha256Hex(BYTES) };
    const s = statement([
      { name: 'pb-pay-v1@1.0.0', digest },
      { name: 'pb-pay-v1@1.0.0', digest },
    ]);
    refuses({ bundle: statementBundle(s, signer.privateKey) }, CoreErrorCode.BINDING_MISMATCH);
    // One subject: the same statement is a valid binding.
    assert.equal(
      run({ bundle: statementBundle(statement([{ name: 'pb-pay-v1@1.0.0', digest }]), signer.privateKey) }).binding?.version,
      '1.0.0',
    );
  });

  it('12-15. refuses signed bytes that are not a policy module of this ABI', () => {
    const text = Buffer.from('#!/bin/sh\necho not wasm\n');
    const bound = (bytes: Buffer) => ({
      bytes,
      bundle: bindingBundle(bytes, { ...REF, environment: 'production' }, signer.privateKey),
    });
    refuses(bound(text), CoreErrorCode.ARTIFACT_NOT_WASM, 'invalid artifact: not a WASM file');
    refuses(bound(Buffer.concat([BYTES.subarray(0, 8), Buffer.from([0x01, 0xff])])), CoreErrorCode.ARTIFACT_INVALID_WASM);
    refuses(
      bound(policyModule('pb-pay-v1', '1.0.0', { start: true })),
      CoreErrorCode.ARTIFACT_INVALID_WASM,
      'invalid artifact: the module has a start function',
    );
    // (module (func (export "f") (result i32) i32.const 42)): valid WebAssembly, not the policy ABI.
    const plain = Buffer.from('0061736d010000000105016000017f03020100070501016600000a06010400412a0b', 'hex');
    refuses(bound(plain), CoreErrorCode.ARTIFACT_ABI_MISMATCH);
  });

  it('15. refuses a signed module renamed to another policy, in every environment', () => {
    const other = policyModule('pb-other', '1.0.0');
    for (const environment of ['dev', 'staging', 'production']) {
      refuses(
        {
          bytes: other,
          environment,
          bundle: bindingBundle(other, { ...REF, environment }, signer.privateKey),
          policy: { requireBinding: environment !== 'dev' },
        },
        CoreErrorCode.EMBEDDED_NAME_MISMATCH,
        'embedded name mismatch: the module says pb-other@1.0.0, loaded as pb-pay-v1@1.0.0',
      );
    }
    const renamed = policyModule('pb-pay-v1', '1.1.0');
    refuses(
      { bytes: renamed, bundle: null, environment: 'dev', policy: { requireBinding: false } },
      CoreErrorCode.EMBEDDED_NAME_MISMATCH,
      'embedded name mismatch: the module says pb-pay-v1@1.1.0, loaded as pb-pay-v1@1.0.0',
    );
  });
});

describe('verifyPolicyArtifact: one order', () => {
  it('reports the earlier of two failing checks', () => {
    const text = Buffer.from('not wasm at all');
    // Not allowed (2) and unsigned (8): the allow-list.
    refuses({ signature: null, policy: { allowList: allowList('2.0.0') } }, CoreErrorCode.VERSION_NOT_ALLOWED);
    // Below the floor (7) and unsigned (8): the rollback.
    refuses({ signature: null, state: { floor: '2.0.0' } }, CoreErrorCode.ROLLBACK_REFUSED);
    // Bad signature (9) and not WebAssembly (12): the signature.
    refuses({ bytes: text, signature: signatureFile(text, stranger.privateKey) }, CoreErrorCode.SIGNATURE_INVALID);
    // Binding for another environment (11) and renamed module (16): the binding.
    const other = policyModule('pb-other', '1.0.0');
    refuses(
      { bytes: other, bundle: bindingBundle(other, { ...REF, environment: 'staging' }, signer.privateKey) },
      CoreErrorCode.BINDING_MISMATCH,
    );
    // Unsigned (8) and binding missing (11): the signature.
    refuses({ signature: null, bundle: null }, CoreErrorCode.SIGNATURE_MISSING);
  });

  it('marks exactly the tampering verdicts as blocking the pair', () => {
    assert.equal(new VerificationError(CoreErrorCode.SIGNATURE_INVALID, 'x').blocksPair, true);
    assert.equal(new VerificationError(CoreErrorCode.SIGNATURE_MALFORMED, 'x').blocksPair, true);
    assert.equal(new VerificationError(CoreErrorCode.BUNDLE_DIGEST_MISMATCH, 'x').blocksPair, true);
    for (const code of [CoreErrorCode.SIGNATURE_MISSING, CoreErrorCode.VERSION_NOT_ALLOWED, CoreErrorCode.BINDING_MISMATCH]) {
      assert.equal(new VerificationError(code, 'x').blocksPair, false);
    }
  });
});

describe('VerifiedArtifact: made only by core, checked at run time', () => {
  const verified = run();

  it('refuses a spread copy with another module', () => {
    const other = new WebAssembly.Module(policyModule('pb-evil', '6.6.6'));
    const forged = { ...verified, module: other };
    assert.equal(isVerifiedArtifact(forged), false);
    assert.throws(() => assertVerifiedArtifact(forged), { code: CoreErrorCode.ARTIFACT_NOT_VERIFIED });
    assert.throws(() => PolicyHost.load(forged), { code: CoreErrorCode.ARTIFACT_NOT_VERIFIED });
  });

  it('refuses a look-alike literal and a structured clone', () => {
    const literal = {
      ref: REF,
      module: verified.module,
      digest: verified.digest,
      size: verified.size,
      keyId: verified.keyId,
      meta: verified.meta,
      tables: verified.tables,
      binding: null,
      trust: 'keys',
      verifiedAt: new Date(),
    };
    assert.throws(() => PolicyHost.load(literal as unknown as VerifiedArtifact), { code: CoreErrorCode.ARTIFACT_NOT_VERIFIED });
    assert.throws(() => assertVerifiedArtifact(Object.create(verified)), { code: CoreErrorCode.ARTIFACT_NOT_VERIFIED });
    assert.throws(() => assertVerifiedArtifact(null), { code: CoreErrorCode.ARTIFACT_NOT_VERIFIED });
  });

  it('cannot be altered in place', () => {
    assert.throws(() => {
      (verified as { module: WebAssembly.Module }).module = new WebAssembly.Module(policyModule('pb-evil', '6.6.6'));
    }, TypeError);
    assert.throws(() => {
      (verified.tables.reasons as string[])[0] = 'pwned';
    }, TypeError);
    assert.ok(isVerifiedArtifact(verified));
  });
});

describe('compareSemver', () => {
  it('orders versions by SemVer 2.0.0 precedence', () => {
    const ordered = [
      '0.9.0',
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.2.0',
      '1.10.0',
      '10.0.0',
    ];
    for (let i = 0; i < ordered.length - 1; i++) {
      assert.ok(compareSemver(ordered[i] as string, ordered[i + 1] as string) < 0, `${ordered[i]} < ${ordered[i + 1]}`);
      assert.ok(compareSemver(ordered[i + 1] as string, ordered[i] as string) > 0);
    }
    assert.equal(compareSemver('1.0.0+build.1', '1.0.0'), 0);
  });
});
