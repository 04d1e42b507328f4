// Keyless verification (bundle/keyless.ts) with bundles made offline by @sigstore/mock's
// Fulcio, Rekor and TSA behind a loopback server: the happy paths by file and by digest, and
// each failure class refused with its own code and message.
import assert from 'node:assert/strict';
import { createHash, sign as cryptoSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { verifyKeylessBundle } from '../bundle/keyless.js';
import { parseBundle } from '../bundle/parse.js';
import { type ArtifactInput, verifyBundle } from '../bundle/verify.js';
import { CoreErrorCode } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { verifyPrehashed } from '../signature/prehashed.js';
import { SignatureVerifier } from '../signature/verifier.js';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '../testing/keyless-fixtures.js';
import { parseIdentityPolicy } from './identity.js';
import { loadTrustedRoot, publicGoodTrustedRoot } from './trusted-root.js';

const blob = Buffer.from('\0asm\x01\0\0\0 pretend policy bytes');
const digestOf = (b: Buffer): ArtifactInput => ({ algorithm: 'sha256', digest: createHash('sha256').update(b).digest() });
const identity = parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subject: DEFAULT_SUBJECT });

describe('identity policies', () => {
  it('refuses an unanchored pattern when the policy is loaded, saying why', () => {
    for (const subjectRegExp of ['https://github.com/acme/.*', '^https://github.com/acme/.*', 'acme$', '^acme\\$']) {
      assert.throws(() => parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subjectRegExp }), {
        code: CoreErrorCode.IDENTITY_POLICY_INVALID,
        message: /the subject pattern .* is not anchored: it must start with \^ and end with \$/,
      });
    }
    assert.throws(() => parseIdentityPolicy({ issuerRegExp: 'https://issuer', subject: 'x' }), {
      message: /the issuer pattern "https:\/\/issuer" is not anchored/,
    });
  });

  it('keeps an alternation inside the anchors, and refuses both forms, missing fields and unknown fields', () => {
    const p = parseIdentityPolicy({ issuer: 'i', subjectRegExp: '^a|b$' });
    assert.ok(p.subject.kind === 'regexp' && p.subject.regexp.test('a') && p.subject.regexp.test('b'));
    assert.ok(p.subject.kind === 'regexp' && !p.subject.regexp.test('xb') && !p.subject.regexp.test('ax'));
    assert.throws(() => parseIdentityPolicy({ issuer: 'i', subject: 'a', subjectRegExp: '^a$' }), /not both/);
    assert.throws(() => parseIdentityPolicy({ subject: 'a' }), /the issuer is required/);
    assert.throws(() => parseIdentityPolicy({ issuer: 'i', subject: 'a', githubRepo: 'x' }), /unknown field githubRepo/);
    assert.throws(() => parseIdentityPolicy({ issuer: 'i', subject: 'a', githubRepositoryId: 'acme' }), /must be a number/);
  });
});

describe('trusted roots', () => {
  it('reads the public-good root embedded in @sigstore/tuf, offline', () => {
    const { root, source } = publicGoodTrustedRoot();
    assert.match(source, /public-good/);
    assert.ok(root.certificateAuthorities.length >= 1 && root.tlogs.length >= 1);
  });

  it('refuses a root with an entry that has no start of validity', () => {
    const json = {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [],
      ctlogs: [],
      timestampAuthorities: [],
      certificateAuthorities: [{ uri: 'https://fulcio.example', certChain: { certificates: [] }, validFor: {} }],
    };
    assert.throws(() => loadTrustedRoot(json, 'root.json'), {
      code: CoreErrorCode.TRUSTED_ROOT_INVALID,
      message:
        'invalid trusted root root.json: certificateAuthorities[0] (https://fulcio.example) has no start of validity (validFor.start): an entry without a start is not trusted',
    });
  });
});

describe('keyless verification', () => {
  let svc: KeylessServices;
  let other: KeylessServices;
  before(async () => {
    svc = await startKeylessServices();
    other = await startKeylessServices();
  });
  after(async () => {
    await svc?.close();
    await other?.close();
  });
  const root = (json: Record<string, unknown>) => loadTrustedRoot(json, 'trusted_root.json');
  const verify = (bundle: string, input: ArtifactInput = blob, r = root(trustedRootJson(svc)), ids = [identity]) =>
    verifyKeylessBundle(parseBundle(bundle), input, { trustedRoot: r, identities: ids });

  it('verifies a message-signature bundle by file and by sha256 digest, and a DSSE bundle both ways', async () => {
    const claims = {
      repository: 'acme/policies',
      repository_id: '4242',
      ref: 'refs/tags/v1.0.0',
      sha: 'abc123',
      event_name: 'push',
    };
    const msg = await svc.sign(blob, { claims });
    const result = verify(msg);
    assert.equal(result.identity.subject, DEFAULT_SUBJECT);
    assert.equal(result.identity.issuer, DEFAULT_ISSUER);
    assert.equal(result.identity.githubWorkflowRepository, 'acme/policies');
    assert.equal(result.identity.githubRepositoryId, '4242');
    assert.equal(result.identity.githubWorkflowRef, 'refs/tags/v1.0.0');
    assert.equal(result.identity.githubWorkflowTrigger, 'push');
    assert.deepEqual(result.trustedTimes.map((t) => t.source).sort(), ['timestamp-authority', 'transparency-log']);
    verify(msg, digestOf(blob));
    const dsse = await svc.sign(blob, { kind: 'dsse' });
    assert.equal(verify(dsse).statement?._type, 'https://in-toto.io/Statement/v1');
    verify(dsse, digestOf(blob));
    // A DSSE envelope logged as a hashedrekord entry of SHA-256(PAE) (Rekor v2 clients' way).
    const dsseHashedrekord = await svc.sign(blob, { kind: 'dsse', dsseAsHashedrekord: true });
    assert.equal(JSON.parse(dsseHashedrekord).verificationMaterial.tlogEntries[0].kindVersion.kind, 'hashedrekord');
    verify(dsseHashedrekord);
    // GitHub facts in the policy: the repository id is preferred, and all given must match.
    const gh = parseIdentityPolicy({
      issuer: DEFAULT_ISSUER,
      subjectRegExp: '^https://github\\.com/acme/policies/.*$',
      githubRepositoryId: '4242',
      githubWorkflowRepository: 'acme/policies',
      githubWorkflowRef: 'refs/tags/v1.0.0',
    });
    verify(msg, blob, root(trustedRootJson(svc)), [gh]);
    const renamed = parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subject: DEFAULT_SUBJECT, githubRepositoryId: '9999' });
    assert.throws(() => verify(msg, blob, root(trustedRootJson(svc)), [renamed]), {
      code: CoreErrorCode.IDENTITY_MISMATCH,
      message: 'certificate extension mismatch: githubRepositoryId is 4242, expected 9999',
    });
  });

  it('refuses each failure class with its own code and message', async () => {
    const msg = await svc.sign(blob);
    const expired = await startKeylessServices({ caClock: new Date(Date.now() - 30 * 60_000) });
    const noSct = await startKeylessServices({ ct: false });
    try {
      const cases: Array<[string, () => unknown, CoreErrorCode, RegExp]> = [
        [
          'wrong issuer',
          async () => verify(await svc.sign(blob, { claims: { iss: 'https://evil.example' } })),
          CoreErrorCode.IDENTITY_MISMATCH,
          /^certificate issuer mismatch: the certificate was issued for OIDC issuer https:\/\/evil\.example, expected https:\/\/issuer\.example$/,
        ],
        [
          'wrong SAN',
          async () => verify(await svc.sign(blob, { claims: { sub: 'https://github.com/mallory/x' } })),
          CoreErrorCode.IDENTITY_MISMATCH,
          /^certificate identity mismatch: the certificate's subject \(SAN\) is https:\/\/github\.com\/mallory\/x, expected /,
        ],
        [
          'expired certificate',
          async () => verify(await expired.sign(blob), blob, root(trustedRootJson(expired))),
          CoreErrorCode.CERTIFICATE_EXPIRED,
          /^certificate expired: the signing certificate \(or its chain\) was not valid at the signature's trusted time /,
        ],
        [
          'no SCT',
          async () => verify(await noSct.sign(blob), blob, root(trustedRootJson(noSct))),
          CoreErrorCode.SCT_INVALID,
          /^certificate has no SCT/,
        ],
        [
          'invalid SCT',
          () => verify(msg, blob, root(trustedRootJson({ base: svc, ctlog: other }))),
          CoreErrorCode.SCT_INVALID,
          /^certificate SCT invalid: /,
        ],
        [
          'chain to an untrusted CA',
          () => verify(msg, blob, root(trustedRootJson({ base: svc, ca: other }))),
          CoreErrorCode.CERTIFICATE_UNTRUSTED,
          /^certificate chain untrusted: the signing certificate does not chain to a certificate authority of the trusted root/,
        ],
        [
          'tlog entry missing',
          async () => verify(await svc.sign(blob, { tlog: false })),
          CoreErrorCode.TLOG_INVALID,
          /^transparency log entry missing: /,
        ],
        [
          'tlog entry invalid',
          () => verify(msg, blob, root(trustedRootJson({ base: svc, tlog: other }))),
          CoreErrorCode.TLOG_INVALID,
          /^transparency log entry invalid: inclusion promise could not be verified/,
        ],
        [
          'timestamp invalid',
          () => verify(msg, blob, root(trustedRootJson({ base: svc, tsa: other }))),
          CoreErrorCode.TIMESTAMP_INVALID,
          /^timestamp invalid: the RFC 3161 timestamp does not verify/,
        ],
        [
          'trust-root entry outside its validity window',
          () => verify(msg, blob, root(trustedRootJson(svc, { start: new Date(svc.clock.getTime() + 3600_000) }))),
          CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
          /^trusted root entry outside its validity window: the .* of trusted_root\.json that the bundle needs was not valid at the bundle's time /,
        ],
        [
          'trust-root entry that ended before the bundle',
          () =>
            verify(msg, blob, root(trustedRootJson(svc, { start: new Date(0), end: new Date(svc.clock.getTime() - 3600_000) }))),
          CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
          /^trusted root entry outside its validity window/,
        ],
        [
          'another artifact',
          () => verify(msg, Buffer.from('other bytes')),
          CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
          /^bundle digest does not match the artifact/,
        ],
      ];
      const messages = new Set<string>();
      for (const [label, run, code, message] of cases) {
        await assert.rejects(
          async () => run(),
          (err: { code?: string; message?: string }) => {
            assert.equal(err.code, code, `${label}: ${err.message}`);
            assert.match(err.message ?? '', message, label);
            messages.add((err.message ?? '').split(':')[0] as string);
            return true;
          },
          label,
        );
      }
      // One distinct message (its leading words) per failure class; the two window cases share one.
      assert.equal(messages.size, cases.length - 1);
    } finally {
      await expired.close();
      await noSct.close();
    }
  });

  it('refuses a tampered signature, and a keyed bundle, with their own messages', async () => {
    const json = JSON.parse(await svc.sign(blob));
    const sig = Buffer.from(json.messageSignature.signature, 'base64');
    sig.writeUInt8((sig.at(-1) ?? 0) ^ 1, sig.length - 1);
    json.messageSignature.signature = sig.toString('base64');
    assert.throws(
      () => verify(JSON.stringify(json)),
      (err: { code?: string }) => {
        // The TSA token and the tlog body cover the original signature: they no longer match.
        const codes: string[] = [CoreErrorCode.TIMESTAMP_INVALID, CoreErrorCode.TLOG_INVALID, CoreErrorCode.SIGNATURE_INVALID];
        assert.ok(codes.includes(err.code ?? ''), err.code);
        return true;
      },
    );
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyed = await svc.signWithKey(blob, privateKey);
    assert.throws(() => verify(keyed), { code: CoreErrorCode.BUNDLE_INVALID, message: /it carries no certificate/ });
  });
});

describe('Rekor v2 entries (inclusion proof under a signed checkpoint, no integrated time)', () => {
  let svc: KeylessServices;
  let other: KeylessServices;
  before(async () => {
    svc = await startKeylessServices();
    other = await startKeylessServices();
  });
  after(async () => {
    await svc?.close();
    await other?.close();
  });
  const verify = (bundle: string, rootJson = trustedRootJson(svc), input: ArtifactInput = blob) =>
    verifyKeylessBundle(parseBundle(bundle), input, {
      trustedRoot: loadTrustedRoot(rootJson, 'trusted_root.json'),
      identities: [identity],
    });
  type Entry = { inclusionProof: { hashes: string[]; checkpoint: { envelope: string } }; canonicalizedBody: string };
  const edited = (bundle: string, edit: (entry: Entry) => void) => {
    const json = JSON.parse(bundle);
    edit(json.verificationMaterial.tlogEntries[0]);
    return JSON.stringify(json);
  };

  it('verifies a keyless bundle logged to Rekor v2, its time coming from the TSA', async () => {
    const bundle = await svc.sign(blob, { rekorV2: true });
    const entry = JSON.parse(bundle).verificationMaterial.tlogEntries[0];
    assert.deepEqual(entry.kindVersion, { kind: 'hashedrekord', version: '0.0.2' });
    assert.equal(entry.inclusionPromise, undefined);
    const result = verify(bundle);
    assert.deepEqual(
      result.trustedTimes.map((t) => t.source),
      ['timestamp-authority'],
    );
    verify(bundle, trustedRootJson(svc), digestOf(blob));
  });

  it('refuses a bad checkpoint, a bad proof, an untrusted log and a missing timestamp, each saying so', async () => {
    const bundle = await svc.sign(blob, { rekorV2: true });
    const flip = (b64: string) => {
      const bytes = Buffer.from(b64, 'base64');
      bytes.writeUInt8((bytes.at(-1) ?? 0) ^ 1, bytes.length - 1);
      return bytes.toString('base64');
    };
    const cases: Array<[string, () => unknown, CoreErrorCode, RegExp]> = [
      [
        'checkpoint signature tampered',
        () =>
          verify(
            edited(bundle, (e) => {
              const env = e.inclusionProof.checkpoint.envelope;
              const sig = env.slice(env.lastIndexOf(' ') + 1, -1);
              e.inclusionProof.checkpoint.envelope = env.replace(sig, flip(sig));
            }),
          ),
        CoreErrorCode.TLOG_INVALID,
        /^transparency log entry invalid: invalid checkpoint signature$/,
      ],
      [
        'inclusion proof hash tampered',
        () => verify(edited(bundle, (e) => (e.inclusionProof.hashes[1] = flip(e.inclusionProof.hashes[1] as string)))),
        CoreErrorCode.TLOG_INVALID,
        /^transparency log entry invalid: calculated root hash does not match inclusion proof$/,
      ],
      [
        'checkpoint by a log the root does not trust',
        () => verify(bundle, trustedRootJson({ base: svc, tlog: other })),
        CoreErrorCode.TLOG_INVALID,
        /^transparency log entry invalid: invalid checkpoint signature$/,
      ],
      [
        'no timestamp: Rekor v2 gives no time',
        async () => verify(await svc.sign(blob, { rekorV2: true, tsa: false })),
        CoreErrorCode.TIMESTAMP_INVALID,
        /^no trusted time: the bundle has no verifiable timestamp/,
      ],
    ];
    for (const [label, run, code, message] of cases) {
      await assert.rejects(
        async () => run(),
        (err: { code?: string; message?: string }) => {
          assert.equal(err.code, code, `${label}: ${err.message}`);
          assert.match(err.message ?? '', message, label);
          return true;
        },
        label,
      );
    }
  });
});

describe('key validity windows at trusted time', () => {
  let svc: KeylessServices;
  before(async () => {
    svc = await startKeylessServices();
  });
  after(async () => svc?.close());

  it('accepts a retired key whose signature a TSA dated inside its window; refuses it without that proof', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verifier = new SignatureVerifier(PublicKey.fromKeyObject(publicKey));
    const trustedRoot = loadTrustedRoot(trustedRootJson(svc), 'trusted_root.json');
    const retired = { notBefore: new Date(svc.clock.getTime() - 86400_000), notAfter: new Date(svc.clock.getTime() + 60_000) };
    const later = new Date(svc.clock.getTime() + 30 * 86400_000);

    const timestamped = parseBundle(await svc.signWithKey(blob, privateKey, { tlog: false }));
    const ok = verifyBundle(timestamped, blob, verifier, { trustedRoot, requireTlog: false, keyValidity: retired, now: later });
    assert.equal(ok.trustedTimes?.[0]?.source, 'timestamp-authority');

    // The same key and bytes without a timestamp: only the signer's word dates it, so the
    // window is judged now, after the key retired.
    const bare = parseBundle(await svc.signWithKey(blob, privateKey, { tlog: false, tsa: false }));
    assert.throws(() => verifyBundle(bare, blob, verifier, { keyValidity: retired, now: later }), {
      code: CoreErrorCode.KEY_OUTSIDE_VALIDITY,
      message:
        /is outside its validity window .* and the signature has no trusted timestamp proving it was made inside it; the signer's own signing time is not trusted$/,
    });

    // A timestamp after the end of the window is refused, naming the time.
    const ended = { notAfter: new Date(svc.clock.getTime() - 60_000) };
    assert.throws(
      () => verifyBundle(timestamped, blob, verifier, { trustedRoot, requireTlog: false, keyValidity: ended, now: later }),
      {
        code: CoreErrorCode.KEY_OUTSIDE_VALIDITY,
        message: /used outside its validity window: an RFC 3161 timestamp dates the signature /,
      },
    );
  });
});

describe('prehashed verification (sha256:<hex> in place of a file)', () => {
  it('verifies ECDSA P-256/P-384/P-521 and RSA signatures from the digest, and refuses a wrong one', () => {
    const msg = Buffer.from('the message');
    const cases: Array<[string, object, string]> = [
      ['ec', { namedCurve: 'P-256' }, 'sha256'],
      ['ec', { namedCurve: 'P-384' }, 'sha384'],
      ['ec', { namedCurve: 'P-521' }, 'sha512'],
      ['ec', { namedCurve: 'P-256' }, 'sha384'],
      ['rsa', { modulusLength: 2048 }, 'sha256'],
    ];
    for (const [type, opts, hash] of cases) {
      // biome-ignore lint/suspicious/noExplicitAny: generateKeyPairSync overloads by key type
      const { privateKey, publicKey } = generateKeyPairSync(type as any, opts as any) as unknown as {
        privateKey: KeyObject;
        publicKey: KeyObject;
      };
      for (let i = 0; i < 3; i++) {
        const sig = cryptoSign(hash, msg, privateKey);
        const d = createHash(hash).update(msg).digest();
        assert.equal(verifyPrehashed(publicKey, hash, d, sig), 'valid', `${type} ${JSON.stringify(opts)} ${hash}`);
        const wrong = Buffer.from(d);
        wrong.writeUInt8((wrong[0] ?? 0) ^ 1, 0);
        assert.equal(verifyPrehashed(publicKey, hash, wrong, sig), 'invalid');
      }
    }
    const { publicKey } = generateKeyPairSync('ed25519');
    assert.equal(verifyPrehashed(publicKey, 'sha256', Buffer.alloc(32), Buffer.alloc(64)), 'unsupported');
  });
});
