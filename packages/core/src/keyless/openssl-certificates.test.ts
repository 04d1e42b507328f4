// Keyless verification against certificates made by openssl (testing/openssl-ca.ts), not by
// the Sigstore libraries: a well-formed one verifies (so the refusals below are for their
// stated reason), and each certificate that must fail (expired, wrong issuer, wrong SAN, no
// SCT, wrong chain) is refused with its own code and message. The bundles are logged and
// timestamped by the local Rekor and TSA (keyless-fixtures.ts), as a real signer's would be.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyKeylessBundle } from '../bundle/keyless.js';
import { parseBundle } from '../bundle/parse.js';
import { CoreErrorCode } from '../error.js';
import { tempDir } from '../testing/hygiene.js';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '../testing/keyless-fixtures.js';
import { createOpensslCa, type LeafOptions, type OpensslCa } from '../testing/openssl-ca.js';
import { toolMissing } from '../testing/tools.js';
import { parseIdentityPolicy } from './identity.js';
import { loadTrustedRoot } from './trusted-root.js';

const blob = Buffer.from('\0asm\x01\0\0\0 policy bytes signed under an openssl-made certificate');

describe('keyless verification of openssl-made certificates', { skip: toolMissing('openssl') }, () => {
  let svc: KeylessServices;
  let ca: OpensslCa;
  let rogue: OpensslCa;
  before(async () => {
    // The CAs first: their certificates start when openssl makes them, which must not be
    // after the services' clock (the trusted time of every signature below), however slow
    // openssl is on a loaded machine.
    const dir = tempDir('apx-openssl-ca-');
    ca = createOpensslCa(join(dir, 'trusted'), 'apx openssl');
    rogue = createOpensslCa(join(dir, 'rogue'), 'apx openssl');
    svc = await startKeylessServices();
  });
  /** A time relative to the services' clock (the Rekor and TSA time of each bundle). */
  const minutes = (n: number) => new Date(svc.clock.getTime() + n * 60_000);
  after(async () => {
    await svc?.close();
  });

  /** The fixture's Rekor and TSA, with this openssl CA and its CT log in place of Fulcio's. */
  const trustedRoot = (ctlogKey = ca.ctlogKey) =>
    loadTrustedRoot(
      trustedRootJson(svc, {
        edit: (root) => {
          const start = new Date(Date.now() - 3600_000).toISOString();
          root.certificateAuthorities = [
            {
              subject: { organization: 'apx-test', commonName: 'apx openssl' },
              uri: 'https://fulcio.openssl.test',
              certChain: { certificates: ca.chain.map((c) => ({ rawBytes: c.toString('base64') })) },
              validFor: { start },
            },
          ];
          root.ctlogs = [
            {
              baseUrl: 'https://ctfe.openssl.test',
              hashAlgorithm: 'SHA2_256',
              publicKey: { rawBytes: ctlogKey.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
              logId: { keyId: logId(ctlogKey) },
            },
          ];
        },
      }),
      'trusted_root.json',
    );
  const identity = parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subject: DEFAULT_SUBJECT });
  const good = (): LeafOptions => ({
    san: DEFAULT_SUBJECT,
    issuer: DEFAULT_ISSUER,
    notBefore: minutes(-5),
    notAfter: minutes(10),
  });

  async function bundleFor(from: OpensslCa, options: Partial<LeafOptions> = {}): Promise<string> {
    const leaf = from.issue({ ...good(), ...options });
    return svc.signWithCertificate(blob, leaf.privateKey, leaf.certificatePem);
  }
  const verify = (bundle: string, ctlogKey?: Buffer) =>
    verifyKeylessBundle(parseBundle(bundle), blob, { trustedRoot: trustedRoot(ctlogKey), identities: [identity] });

  it('verifies a well-formed certificate, its SCT and its identity', async () => {
    const result = verify(await bundleFor(ca));
    assert.equal(result.identity.subject, DEFAULT_SUBJECT);
    assert.equal(result.identity.issuer, DEFAULT_ISSUER);
  });

  it('refuses each bad certificate with its own code and message', async () => {
    const cases: Array<[string, () => Promise<string>, CoreErrorCode, RegExp, boolean?]> = [
      [
        'expired',
        () => bundleFor(ca, { notBefore: minutes(-30), notAfter: minutes(-20) }),
        CoreErrorCode.CERTIFICATE_EXPIRED,
        /^certificate expired: the signing certificate \(or its chain\) was not valid at the signature's trusted time /,
      ],
      [
        'not yet valid',
        () => bundleFor(ca, { notBefore: minutes(20), notAfter: minutes(30) }),
        CoreErrorCode.CERTIFICATE_EXPIRED,
        /^certificate expired: /,
      ],
      [
        'wrong issuer',
        () => bundleFor(ca, { issuer: 'https://evil.example' }),
        CoreErrorCode.IDENTITY_MISMATCH,
        /^certificate issuer mismatch: the certificate was issued for OIDC issuer https:\/\/evil\.example, expected https:\/\/issuer\.example$/,
      ],
      [
        'wrong SAN',
        () => bundleFor(ca, { san: 'https://github.com/mallory/x/.github/workflows/release.yml@refs/heads/main' }),
        CoreErrorCode.IDENTITY_MISMATCH,
        /^certificate identity mismatch: the certificate's subject \(SAN\) is https:\/\/github\.com\/mallory\/x\/\S+, expected /,
      ],
      ['no SCT', () => bundleFor(ca, { sct: false }), CoreErrorCode.SCT_INVALID, /^certificate has no SCT/],
      [
        'SCT from a CT log the root does not trust',
        () => bundleFor(ca),
        CoreErrorCode.SCT_INVALID,
        /^certificate SCT invalid: /,
        true, // verified against the rogue CA's CT log key
      ],
      [
        'wrong chain',
        () => bundleFor(rogue),
        CoreErrorCode.CERTIFICATE_UNTRUSTED,
        /^certificate chain untrusted: the signing certificate does not chain to a certificate authority of the trusted root/,
      ],
    ];
    const prefixes = new Set<string>();
    for (const [label, make, code, message, rogueCtlog] of cases) {
      const bundle = await make();
      assert.throws(
        () => verify(bundle, rogueCtlog ? rogue.ctlogKey : undefined),
        (err: { code?: string; message?: string }) => {
          assert.equal(err.code, code, `${label}: ${err.message}`);
          assert.match(err.message ?? '', message, label);
          prefixes.add((err.message ?? '').split(':')[0] as string);
          return true;
        },
        label,
      );
    }
    // Expired and not-yet-valid share one message; every other class has its own.
    assert.equal(prefixes.size, cases.length - 1);
  });
});

function logId(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64');
}
