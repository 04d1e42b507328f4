// A load held in the loader's memory stands only under the trust it was verified with and
// above the rollback floor (issue 17's multi-process e2e found an older version, signed by a
// signer since removed, served again from memory after the newer one was revoked).
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keysTrust, PublicKey, SignatureVerifier, sha256Hex, type TrustInForce, type TufTrust } from '@apx/core';
import { bindingBundle, policyModule, signatureFile } from '@apx/core/testing';
import { tempDir } from '@apx/core/testing/hygiene';
import { LocalStore, publishArtifact } from '@apx/storage';
import { LoadError } from './load-error.js';
import { type LoadObserver, type LoadSource, PolicyLoader } from './loader.js';
import { artifactSourceOf } from './store-source.js';

const POLICY = 'pb-memory';
const keyA = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyB = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifierOf = (k: { publicKey: KeyObject }) => new SignatureVerifier(PublicKey.fromKeyObject(k.publicKey));
const A = verifierOf(keyA);
const B = verifierOf(keyB);

/** A local store with pb-memory@1.0.0 signed by A and 1.1.0 signed by B, bound for production. */
async function store(): Promise<LocalStore> {
  const local = new LocalStore({ root: join(tempDir('apx-memory-trust-'), 'store') });
  for (const [version, key] of [
    ['1.0.0', keyA],
    ['1.1.0', keyB],
  ] as const) {
    const artifact = policyModule(POLICY, version);
    await publishArtifact(local, {
      ref: `${POLICY}@${version}`,
      artifact,
      signature: signatureFile(artifact, key.privateKey),
      bundle: bindingBundle(artifact, { policyId: POLICY, version, environment: 'production' }, key.privateKey),
    });
  }
  return local;
}

/** Production's targets role: approves the versions given, trusts the signers given. */
function production(versions: string[], signers: SignatureVerifier[]): (ref: { version: string }) => TufTrust {
  return (ref) => {
    const artifact = policyModule(POLICY, ref.version);
    return {
      kind: 'tuf',
      environment: 'production',
      target: versions.includes(ref.version) ? { length: artifact.length, sha256: sha256Hex(artifact) } : undefined,
      signers: signers.map((verifier) => ({ keyId: verifier.publicKey.keyId, verifier })),
      namedVersions: new Set(versions),
    };
  };
}

function loader(local: LocalStore, trust: { current: (ref: { version: string }) => TrustInForce; kind: 'tuf' | 'keys' }) {
  const sources: LoadSource[] = [];
  const observer: LoadObserver = {
    loaded: (_policy, source) => sources.push(source),
    rejected() {},
    unsignedAccepted() {},
    diskEntryRejected() {},
  };
  const trustSource =
    trust.kind === 'tuf'
      ? { kind: 'tuf' as const, trustFor: (ref: { version: string }) => trust.current(ref) as TufTrust, refusal: () => undefined }
      : { kind: 'keys' as const, trustFor: async (ref: { version: string }) => trust.current(ref) };
  const policyLoader = new PolicyLoader({
    source: artifactSourceOf(local),
    trust: trustSource,
    strict: true,
    allowList: undefined,
    runtimeFactory: () => ({ decide: () => ({ allow: true, status: 200, reason: '', rateLimits: [], json: '{}' }) }),
    observer,
    memoryCacheEntries: 8,
    binding: { environment: 'production', required: true },
  });
  return { policyLoader, sources };
}

const V1 = { policyId: POLICY, version: '1.0.0' };
const V11 = { policyId: POLICY, version: '1.1.0' };

describe('the loader memory answers only under the trust and floor a load was verified with', () => {
  it('unchanged trust: the second load comes from memory', async () => {
    const trust = { kind: 'tuf' as const, current: production(['1.0.0'], [A]) };
    const { policyLoader, sources } = loader(await store(), trust);
    await policyLoader.load(V1);
    await policyLoader.load(V1);
    assert.deepEqual(sources, ['store', 'memory']);
  });

  it('a signer removed from the trust repository: the version it signed is refused, not served from memory', async () => {
    const trust = { kind: 'tuf' as const, current: production(['1.0.0', '1.1.0'], [A, B]) };
    const { policyLoader, sources } = loader(await store(), trust);
    await policyLoader.load(V1);
    await policyLoader.load(V11);
    // Rotation: A removed. Then 1.1.0 revoked: what falls back to 1.0.0 must not find it in memory.
    trust.current = production(['1.0.0'], [B]);
    await assert.rejects(policyLoader.load(V1), LoadError);
    assert.deepEqual(sources, ['store', 'store']);
  });

  it('an approval withdrawn (revocation): refused, not served from memory', async () => {
    const trust = { kind: 'tuf' as const, current: production(['1.0.0'], [A]) };
    const { policyLoader } = loader(await store(), trust);
    await policyLoader.load(V1);
    trust.current = production([], [A]);
    await assert.rejects(policyLoader.load(V1), LoadError);
  });

  it('a floor risen since (runbook mode): the older version is refused as a rollback, not served from memory', async () => {
    const both = (): TrustInForce => ({
      ...keysTrust(A),
      signers: [A, B].map((v) => ({ keyId: v.publicKey.keyId, verifier: v })),
    });
    const { policyLoader, sources } = loader(await store(), { kind: 'keys', current: both });
    await policyLoader.load(V1);
    await policyLoader.load(V11);
    await assert.rejects(
      policyLoader.load(V1),
      (err: unknown) => err instanceof LoadError && /rollback|below/i.test(err.message),
    );
    assert.deepEqual(sources, ['store', 'store']);
  });
});
