// Shapes of real-world Sigstore bundles that must verify (or must not), made offline with the
// keyless fixture (@sigstore/mock's Fulcio, Rekor v1 and TSA, and the fixture's Rekor v2 log):
// a keyed bundle whose only log evidence is an inclusion proof, a Rekor v2 checkpoint signed
// by a log key outside its validity window, the same log entry carried twice, a bundle
// v0.1 whose inclusion proof has no checkpoint, and checkpoints that do not fit their proof.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CoreErrorCode } from '../error.js';
import { parseIdentityPolicy } from '../keyless/identity.js';
import { runSigstore, toEntity } from '../keyless/sigstore-run.js';
import { loadTrustedRoot } from '../keyless/trusted-root.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import {
  DEFAULT_ISSUER,
  DEFAULT_SUBJECT,
  type KeylessServices,
  startKeylessServices,
  trustedRootJson,
} from '../testing/keyless-fixtures.js';
import { verifyKeylessBundle } from './keyless.js';
import { parseBundle } from './parse.js';
import { type ArtifactInput, verifyBundle } from './verify.js';

const blob = Buffer.from('\0asm\x01\0\0\0 real-world bundle shapes');
const digestOf = (b: Buffer): ArtifactInput => ({ algorithm: 'sha256', digest: createHash('sha256').update(b).digest() });
const identity = parseIdentityPolicy({ issuer: DEFAULT_ISSUER, subject: DEFAULT_SUBJECT });

// biome-ignore lint/suspicious/noExplicitAny: bundle JSON edited in tests
type Json = Record<string, any>;
const edited = (bundle: string, edit: (json: Json) => void): string => {
  const json = JSON.parse(bundle) as Json;
  edit(json);
  return JSON.stringify(json);
};
const flip = (b64: string): string => {
  const bytes = Buffer.from(b64, 'base64');
  bytes[0] = (bytes[0] ?? 0) ^ 1;
  return bytes.toString('base64');
};
/** The trusted-root edit that sets the Rekor v2 log key's window (tlogs[1] in the fixture's root). */
const v2LogWindow =
  (validFor: { start: string; end?: string }) =>
  (root: Record<string, unknown[]>): void => {
    const v2 = (root.tlogs ?? [])[1] as { publicKey: { validFor: unknown } };
    v2.publicKey.validFor = validFor;
  };

describe('real-world bundle shapes', () => {
  let svc: KeylessServices;
  before(async () => {
    svc = await startKeylessServices();
  });
  after(async () => svc?.close());
  const root = (json: Record<string, unknown>) => loadTrustedRoot(json, 'trusted_root.json');
  const keyless = (bundle: string, r = root(trustedRootJson(svc)), input: ArtifactInput = blob) =>
    verifyKeylessBundle(parseBundle(bundle), input, { trustedRoot: r, identities: [identity] });
  const iso = (ms: number) => new Date(ms).toISOString();

  it('verifies a keyed bundle whose only log evidence is an inclusion proof, with no timestamp (a key is not dated)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verifier = new SignatureVerifier(PublicKey.fromKeyObject(publicKey));
    const bundle = await svc.signWithKey(blob, privateKey, { rekorV2: true, tsa: false });
    const parsed = parseBundle(bundle);
    assert.equal(parsed.format === 'sigstore' && parsed.timestamps, 0);
    const trustedRoot = root(trustedRootJson(svc));
    const result = verifyBundle(parsed, blob, verifier, { trustedRoot });
    assert.equal(result.tlogEntriesVerified, 1);
    assert.deepEqual(result.trustedTimes, []);
    verifyBundle(parsed, digestOf(blob), verifier, { trustedRoot });
    // The log entry is still checked: a tampered proof is refused.
    const tampered = edited(bundle, (j) => {
      const proof = j.verificationMaterial.tlogEntries[0].inclusionProof;
      proof.hashes[0] = flip(proof.hashes[0]);
    });
    assert.throws(() => verifyBundle(parseBundle(tampered), blob, verifier, { trustedRoot }), {
      code: CoreErrorCode.TLOG_INVALID,
      message: /calculated root hash does not match inclusion proof/,
    });
    // Undated, the checkpoint's log key is judged now: a key retired before now is refused.
    const retired = root(trustedRootJson(svc, { edit: v2LogWindow({ start: iso(0), end: iso(Date.now() - 3600_000) }) }));
    assert.throws(() => verifyBundle(parsed, blob, verifier, { trustedRoot: retired }), {
      code: CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
      message: /Rekor log key .* that signed the log entry's checkpoint was not valid at the time of verification/,
    });
  });

  it("judges a Rekor v2 checkpoint's log key at the RFC 3161 time: refused outside its window, accepted at its end", async () => {
    const bundle = await svc.sign(blob, { rekorV2: true });
    const tsaTime = svc.clock.getTime();
    keyless(bundle);
    const outside: Array<{ start: string; end?: string }> = [
      { start: iso(tsaTime - 86400_000), end: iso(tsaTime - 1000) },
      { start: iso(tsaTime + 1000) },
    ];
    for (const validFor of outside) {
      assert.throws(() => keyless(bundle, root(trustedRootJson(svc, { edit: v2LogWindow(validFor) }))), {
        code: CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
        message: new RegExp(
          `^trusted root entry outside its validity window: the Rekor log key of trusted_root.json that signed the log entry's checkpoint was not valid at the bundle's time ${iso(tsaTime)}$`,
        ),
      });
    }
    // The entry must name (logId) the log that signed its checkpoint, and a log the root lists.
    const renamed = (logId: string) =>
      edited(bundle, (j) => {
        j.verificationMaterial.tlogEntries[0].logId.keyId = logId;
      });
    const v1LogId = createHash('sha256').update(svc.material.tlogKey).digest('base64');
    assert.throws(() => keyless(renamed(v1LogId)), {
      code: CoreErrorCode.TLOG_INVALID,
      message: /^transparency log entry invalid: its checkpoint is not signed by the log the entry names \(its logId\)$/,
    });
    assert.throws(() => keyless(renamed(Buffer.alloc(32, 7).toString('base64'))), {
      code: CoreErrorCode.TLOG_INVALID,
      message: /^transparency log entry invalid: it names a log \(logId BwcH.*\) that trusted_root.json does not list$/,
    });
    // The window is a closed interval: its end is inside it.
    keyless(bundle, root(trustedRootJson(svc, { edit: v2LogWindow({ start: iso(tsaTime - 1000), end: iso(tsaTime) }) })));
  });

  it('counts a log entry carried twice once: it verifies, and does not meet a threshold of two', async () => {
    const twice = (b: string) =>
      edited(b, (j) => j.verificationMaterial.tlogEntries.push(structuredClone(j.verificationMaterial.tlogEntries[0])));
    // Rekor v1 (a SET: its integrated time would count twice too) and Rekor v2 (proof only).
    for (const bundle of [twice(await svc.sign(blob)), twice(await svc.sign(blob, { rekorV2: true }))]) {
      assert.equal(JSON.parse(bundle).verificationMaterial.tlogEntries.length, 2);
      assert.equal(keyless(bundle).identity.subject, DEFAULT_SUBJECT);
      const parsed = parseBundle(bundle);
      assert.ok(parsed.format === 'sigstore');
      const entity = toEntity(parsed.bundle, blob);
      assert.equal(entity.tlogEntries.length, 1);
      const options = { trustedRoot: root(trustedRootJson(svc)), ctlogThreshold: 1, timestampThreshold: 1 };
      assert.throws(() => runSigstore(entity, { ...options, tlogThreshold: 2 }), {
        code: CoreErrorCode.TLOG_INVALID,
        message: /^transparency log entry missing: expected 2 tlog entries, got 1$/,
      });
    }
    // Two entries at one log position (one entry proven twice) are one witness.
    const bundle = await svc.sign(blob, { rekorV2: true });
    const samePosition = edited(bundle, (j) => {
      const copy = structuredClone(j.verificationMaterial.tlogEntries[0]);
      copy.kindVersion.version = '0.0.2';
      copy.integratedTime = '1';
      j.verificationMaterial.tlogEntries.push(copy);
    });
    const parsed = parseBundle(samePosition);
    assert.ok(parsed.format === 'sigstore');
    assert.throws(
      () =>
        runSigstore(toEntity(parsed.bundle, blob), {
          trustedRoot: root(trustedRootJson(svc)),
          tlogThreshold: 2,
          ctlogThreshold: 1,
          timestampThreshold: 1,
        }),
      { code: CoreErrorCode.TLOG_INVALID, message: /^transparency log entry missing: expected 2 distinct log entries, got 1$/ },
    );
  });

  it('verifies a bundle v0.1 whose inclusion proof has no checkpoint through its SET; a tampered proof is refused', async () => {
    const v01 = edited(await svc.sign(blob), (j) => {
      j.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
      const material = j.verificationMaterial;
      if (material.certificate) {
        material.x509CertificateChain = { certificates: [material.certificate] };
        delete material.certificate;
      }
      const entry = material.tlogEntries[0];
      assert.ok(entry.inclusionPromise && entry.inclusionProof?.checkpoint, 'the fixture logs with a SET and a checkpoint');
      delete entry.inclusionProof.checkpoint;
    });
    assert.equal(keyless(v01).identity.subject, DEFAULT_SUBJECT);
    keyless(v01, undefined, digestOf(blob));
    const proofTampered = edited(v01, (j) => {
      const proof = j.verificationMaterial.tlogEntries[0].inclusionProof;
      if (proof.hashes?.length > 0) proof.hashes[0] = flip(proof.hashes[0]);
      else proof.rootHash = flip(proof.rootHash);
    });
    assert.throws(() => keyless(proofTampered), {
      code: CoreErrorCode.TLOG_INVALID,
      message: /^transparency log entry invalid: calculated root hash does not match inclusion proof$/,
    });
    const setTampered = edited(v01, (j) => {
      const promise = j.verificationMaterial.tlogEntries[0].inclusionPromise;
      promise.signedEntryTimestamp = flip(promise.signedEntryTimestamp);
    });
    assert.throws(() => keyless(setTampered), { code: CoreErrorCode.TLOG_INVALID });
  });

  it("reads a checkpoint strictly: its size and root hash are the proof's, its lines well formed, its signer the log", async () => {
    const editCheckpoint = (bundle: string, edit: (entry: Json) => void) =>
      edited(bundle, (j) => edit(j.verificationMaterial.tlogEntries[0]));
    const envelopeEdit = (fn: (env: string) => string) => (entry: Json) => {
      entry.inclusionProof.checkpoint.envelope = fn(entry.inclusionProof.checkpoint.envelope);
    };
    // Rekor v1 (the mock's origin is "<host:port> - <tree id>", signed as "<host:port>") and Rekor v2.
    for (const bundle of [await svc.sign(blob), await svc.sign(blob, { rekorV2: true })]) {
      keyless(bundle);
      // An extra, well-formed signature by another name is ignored.
      keyless(
        editCheckpoint(
          bundle,
          envelopeEdit((env) => `${env}\u2014 witness.example AAAAAAAAAAAAAAAA\n`),
        ),
      );
      const refused: Array<[string, (entry: Json) => void, RegExp]> = [
        [
          'proof root hash',
          (e) => {
            e.inclusionProof.rootHash = flip(e.inclusionProof.rootHash);
          },
          /checkpoint root hash is not the inclusion proof's root hash$/,
        ],
        [
          'proof tree size',
          (e) => {
            e.inclusionProof.treeSize = String(Number(e.inclusionProof.treeSize) + 1);
          },
          /checkpoint is for a tree of \d+ entries, the inclusion proof for one of \d+$/,
        ],
        [
          'signer name',
          envelopeEdit((env) => env.replace(/\n\u2014 (\S+) /, '\n\u2014 sigst ')),
          /checkpoint has no signature under its log's name \(.+\)$/,
        ],
        ['no signature', envelopeEdit((env) => `${env.slice(0, env.indexOf('\n\n') + 2)}`), /checkpoint has no signature$/],
        [
          'malformed signature line',
          envelopeEdit((env) => `${env}not a signature\n`),
          /checkpoint has a malformed signature line "not a signature"$/,
        ],
        [
          'tree size not decimal',
          envelopeEdit((env) => env.replace(/^(.*\n)(\d+)\n/, (_m, o: string, n: string) => `${o}0x${Number(n).toString(16)}\n`)),
          /checkpoint tree size "0x[0-9a-f]+" is not a decimal number$/,
        ],
      ];
      for (const [label, edit, message] of refused) {
        assert.throws(() => keyless(editCheckpoint(bundle, edit)), { code: CoreErrorCode.TLOG_INVALID, message }, label);
      }
    }
  });

  it('refuses a certificate chain that carries a root; the leaf alone verifies', async () => {
    const bundle = await svc.sign(blob);
    keyless(bundle);
    const withRoot = edited(bundle, (j) => {
      const material = j.verificationMaterial;
      const leaf = material.certificate ?? material.x509CertificateChain.certificates[0];
      delete material.certificate;
      material.x509CertificateChain = { certificates: [leaf, { rawBytes: svc.material.caRoot.toString('base64') }] };
    });
    assert.throws(() => keyless(withRoot), {
      code: CoreErrorCode.BUNDLE_INVALID,
      message: /its certificate chain includes a root certificate \(certificate 2 is self-signed\)$/,
    });
  });

  it('refuses a timestamp that does not parse with one line, not a stack', async () => {
    const bundle = edited(await svc.sign(blob), (j) => {
      j.verificationMaterial.timestampVerificationData.rfc3161Timestamps[0].signedTimestamp = 'MAMCAQA=';
    });
    assert.throws(() => keyless(bundle), { code: CoreErrorCode.BUNDLE_INVALID, message: /^invalid bundle: / });
  });
});
