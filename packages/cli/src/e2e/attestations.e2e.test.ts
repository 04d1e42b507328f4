// Attestations through the built CLI: apx compile's SBOM and provenance verify with
// apx verify-attestation and with @sigstore/verify directly; attestations shaped as cosign
// attest-blob writes them (in-toto Statement v0.1 and v1 in a DSSE envelope, in a Sigstore
// bundle), made here with openssl (key generation, ECDSA over DSSE's PAE), verify in APX.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '@apx/core/testing/keyless-fixtures';
import { bundleFromJSON } from '@sigstore/bundle';
import { PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { apx, ok, Workspace } from './harness.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function refused(r: { status: number | null; stderr: string }, message: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /Verified OK/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, message);
}

/** DSSE's pre-authentication encoding (secure-systems-lab/dsse protocol.md). */
function pae(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.byteLength} `), body]);
}

describe('attestations: apx compile writes them, apx verify-attestation checks them', () => {
  const ws = new Workspace();
  let artifact: string;
  const verify = (args: string[], target = artifact) => apx(ws.dir, ['verify-attestation', ...args, target]);

  before(() => {
    artifact = ws.compilePayments('1.0.0');
  });

  it('verifies the SBOM (--type cyclonedx) and the provenance (--type slsaprovenance1), by file and by digest', () => {
    for (const [type, suffix] of [
      ['cyclonedx', '.sbom.sigstore.json'],
      ['slsaprovenance1', '.provenance.sigstore.json'],
      ['https://slsa.dev/provenance/v1', '.provenance.sigstore.json'],
    ] as const) {
      const args = ['--type', type, '--key', 'keys/cosign.pub', '--bundle', `${artifact}${suffix}`];
      const r = ok(verify(args));
      assert.match(r.stderr, /^Verified OK$/m);
      ok(verify(args, `sha256:${sha256(readFileSync(artifact))}`));
    }
    const json = JSON.parse(
      ok(verify(['--type', 'cyclonedx', '--key', 'keys/cosign.pub', '--bundle', `${artifact}.sbom.sigstore.json`, '--json']))
        .stdout,
    );
    assert.equal(json.predicateType, 'https://cyclonedx.org/bom');
    assert.equal(json.subject[0].digest.sha256, sha256(readFileSync(artifact)));
  });

  it('refuses another type (cosign defaults to custom), another file, another key, the binding bundle, a bad --type', () => {
    const sbom = `${artifact}.sbom.sigstore.json`;
    refused(
      verify(['--key', 'keys/cosign.pub', '--bundle', sbom]),
      /predicate type https:\/\/cyclonedx.org\/bom, expected https:\/\/cosign.sigstore.dev\/attestation\/v1/,
    );
    refused(
      verify(['--type', 'slsaprovenance1', '--key', 'keys/cosign.pub', '--bundle', sbom]),
      /expected https:\/\/slsa.dev\/provenance\/v1/,
    );
    refused(
      verify(['--type', 'cyclonedx', '--key', 'keys/cosign.pub', '--bundle', sbom], ws.path('payments-1.0.0.yaml')),
      /no subject has sha256:/,
    );
    ok(apx(ws.dir, ['generate-key-pair', '--output-key-prefix', 'keys/other']));
    refused(verify(['--type', 'cyclonedx', '--key', 'keys/other.pub', '--bundle', sbom]), /signature verification failed/);
    refused(
      verify(['--type', 'cyclonedx', '--key', 'keys/cosign.pub', '--bundle', `${artifact}.sigstore.json`]),
      /predicate type https:\/\/apx.dev/,
    );
    refused(verify(['--type', 'nonsense', '--key', 'keys/cosign.pub', '--bundle', sbom]), /invalid predicate type: nonsense/);
    // A tampered statement: the envelope's signature no longer verifies.
    const bundle = JSON.parse(readFileSync(sbom, 'utf8'));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
    statement.predicate.components = [];
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    writeFileSync(ws.path('tampered.sigstore.json'), JSON.stringify(bundle));
    refused(
      verify(['--type', 'cyclonedx', '--key', 'keys/cosign.pub', '--bundle', 'tampered.sigstore.json']),
      /signature verification failed/,
    );
  });

  it("APX's attestation bundles verify with @sigstore/verify directly", () => {
    const spki = createPublicKey(readFileSync(ws.path('keys/cosign.pub'))).export({ type: 'spki', format: 'der' });
    const empty = TrustedRoot.fromJSON({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [],
    });
    for (const suffix of ['.sbom.sigstore.json', '.provenance.sigstore.json']) {
      const json = JSON.parse(readFileSync(`${artifact}${suffix}`, 'utf8'));
      const hint = json.verificationMaterial.publicKey.hint as string;
      const trust = toTrustMaterial(empty, {
        [hint]: { rawBytes: spki, keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256, validFor: { start: new Date(0) } },
      });
      const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
      assert.doesNotThrow(() => verifier.verify(toSignedEntity(bundleFromJSON(json))));
    }
  });

  it('apx publish stores the attestations with the artifact', () => {
    ok(apx(ws.dir, ['publish', '--store', 'store', artifact]));
    for (const suffix of ['', '.sig', '.sigstore.json', '.sbom.sigstore.json', '.provenance.sigstore.json'])
      assert.deepEqual(readFileSync(ws.path('store', `pb-pay-v1@1.0.0.wasm${suffix}`)), readFileSync(`${artifact}${suffix}`));
  });
});

describe('attestations made as cosign attest-blob makes them verify in APX', () => {
  const ws = new Workspace();
  let svc: KeylessServices;
  const blob = Buffer.from('a release tarball, say');
  const predicate = {
    buildDefinition: { buildType: 'https://example.com/build/v1', externalParameters: {} },
    runDetails: { builder: { id: 'https://example.com/builder' } },
  };

  /** A cosign-shaped bundle: v0.3, DSSE envelope, public-key hint base64(sha256(SPKI)), no log entry (--tlog-upload=false). */
  function cosignBundle(statementType: string, key: string): string {
    const statement = {
      _type: statementType,
      predicateType: 'https://slsa.dev/provenance/v1',
      subject: [{ name: 'release.tar', digest: { sha256: sha256(blob) } }],
      predicate,
    };
    const payload = Buffer.from(JSON.stringify(statement));
    const type = 'application/vnd.in-toto+json';
    writeFileSync(ws.path('pae.bin'), pae(type, payload));
    execFileSync('openssl', ['dgst', '-sha256', '-sign', key, '-out', ws.path('pae.sig'), ws.path('pae.bin')]);
    const sig = readFileSync(ws.path('pae.sig')).toString('base64');
    const spki = execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-outform', 'DER']);
    const hint = createHash('sha256').update(spki).digest('base64');
    return JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: {} },
      dsseEnvelope: { payload: payload.toString('base64'), payloadType: type, signatures: [{ sig, keyid: hint }] },
    });
  }

  before(async () => {
    writeFileSync(ws.path('release.tar'), blob);
    // Throwaway test keys, made by openssl as cosign users' CI would.
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', ws.path('throwaway-test.key')]);
    execFileSync('openssl', ['pkey', '-in', ws.path('throwaway-test.key'), '-pubout', '-out', ws.path('throwaway-test.pub')]);
    writeFileSync(ws.path('v01.sigstore.json'), cosignBundle('https://in-toto.io/Statement/v0.1', ws.path('throwaway-test.key')));
    writeFileSync(ws.path('v1.sigstore.json'), cosignBundle('https://in-toto.io/Statement/v1', ws.path('throwaway-test.key')));
    writeFileSync(ws.path('v02.sigstore.json'), cosignBundle('https://in-toto.io/Statement/v0.2', ws.path('throwaway-test.key')));
    svc = await startKeylessServices();
    writeFileSync(ws.path('trusted_root.json'), JSON.stringify(trustedRootJson(svc)));
    const statement = {
      _type: 'https://in-toto.io/Statement/v0.1',
      predicateType: 'https://cyclonedx.org/bom',
      subject: [{ name: 'release.tar', digest: { sha256: sha256(blob) } }],
      predicate: { bomFormat: 'CycloneDX', specVersion: '1.6' },
    };
    writeFileSync(ws.path('keyless.sigstore.json'), await svc.sign(blob, { kind: 'dsse', statement }));
  });
  after(async () => svc?.close());

  it('in-toto Statement v0.1 and v1, keyed (openssl-made), --type slsaprovenance1 --insecure-ignore-tlog', () => {
    for (const bundle of ['v01.sigstore.json', 'v1.sigstore.json']) {
      const r = apx(ws.dir, [
        'verify-attestation',
        '--type',
        'slsaprovenance1',
        '--key',
        'throwaway-test.pub',
        '--bundle',
        bundle,
        '--insecure-ignore-tlog',
        'release.tar',
      ]);
      ok(r);
      assert.match(r.stderr, /Verified OK/);
    }
    refused(
      apx(ws.dir, [
        'verify-attestation',
        '--type',
        'slsaprovenance1',
        '--key',
        'throwaway-test.pub',
        '--bundle',
        'v02.sigstore.json',
        'release.tar',
      ]),
      /not an in-toto Statement/,
    );
  });

  it('keyless (Fulcio certificate, Rekor entry) with cosign identity flags; a wrong identity is refused', () => {
    const base = [
      'verify-attestation',
      '--type',
      'cyclonedx',
      '--bundle',
      'keyless.sigstore.json',
      '--trusted-root',
      'trusted_root.json',
    ];
    ok(
      apx(ws.dir, [
        ...base,
        '--certificate-identity',
        DEFAULT_SUBJECT,
        '--certificate-oidc-issuer',
        DEFAULT_ISSUER,
        'release.tar',
      ]),
    );
    refused(
      apx(ws.dir, [
        ...base,
        '--certificate-identity',
        'someone@else.example',
        '--certificate-oidc-issuer',
        DEFAULT_ISSUER,
        'release.tar',
      ]),
      /identity|subject/i,
    );
    refused(apx(ws.dir, [...base, 'release.tar']), /--key is required/);
  });
});
